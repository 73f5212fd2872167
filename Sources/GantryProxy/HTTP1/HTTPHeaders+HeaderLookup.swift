import GantryCore
import NIOHTTP1

extension HTTPHeaders: HeaderLookup {}
