# gantry's image: the gateway of `gantry export kubernetes`, and the example pods it runs
# (`gantry example auth-service`, `app-service`, `echo`).
#   docker build -t gantry:0.1.0 .
FROM swift:6.3-noble AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources Sources
# The Swift runtime and Foundation linked in: the image below needs only glibc and libstdc++.
RUN swift build -c release --product gantry --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/gantry" /usr/local/bin/gantry

FROM ubuntu:noble
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/gantry --create-home gantry
COPY --from=build /usr/local/bin/gantry /usr/local/bin/gantry
USER 10001
WORKDIR /var/lib/gantry
ENTRYPOINT ["gantry"]
CMD ["up"]
