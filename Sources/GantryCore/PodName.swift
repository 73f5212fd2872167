/// Pod names as a ReplicaSet makes them: the owner's name, a dash and five characters from
/// the alphabet Kubernetes uses for generated names (no vowels, no look-alikes), e.g.
/// `app-service-7d9f2`.
public enum PodName {
    static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789".utf8)

    public static func generate<R: RandomNumberGenerator>(for owner: String, using random: inout R) -> String {
        var suffix = ""
        for _ in 0..<5 {
            suffix.append(Character(Unicode.Scalar(alphabet[Int(random.next(upperBound: UInt64(alphabet.count)))])))
        }
        return "\(owner)-\(suffix)"
    }
}
