/// The reference scenario `gantry up` runs without a file: the SaaS at example.com, with
/// example.com/auth → auth-service and example.com/app → app-service, each backed by pods
/// of the example programs in this binary.
public enum BuiltInExample {
    public static let name = "<built-in example>"

    public static let yaml = """
        # The built-in example: `gantry up` with no file runs this.
        runtime:
          shutdownGracePeriod: 15s
        # example.com resolves to the load balancer: dig @127.0.0.1 -p 5353 example.com
        # Services answer as <service>.default.svc.cluster.local (their cluster IPs).
        dns:
          listen: 127.0.0.1:5353
          zones:
            - origin: example.com
              records:
                - {type: A, listener: https}
                - {name: www, type: CNAME, target: example.com}
                - {name: _https._tcp, type: SRV, port: 8443, target: example.com}
                - {type: TXT, text: ["v=spf1 -all"]}
        loadBalancer:
          listeners:
            - {name: web, port: 8080}
            # TLS with a certificate from gantry's local CA (`gantry certs ca` prints its path);
            # HTTP/2 and HTTP/1.1 by ALPN.
            - {name: https, port: 8443, tls: {selfSigned: [example.com, "*.example.com"]}}
        # `gantry trace URL` shows each stage of a request (Server-Timing, on request only).
        tracing: {serverTiming: true}
        gateway:
          policies:
            # The token the auth service issued: checked against its published keys; the user
            # goes upstream as X-User-ID (a client's own X-User-ID is removed).
            - name: user-token
              jwt:
                jwks: {service: auth-service, path: /auth/.well-known/jwks.json}
                issuer: https://example.com/auth
                audiences: [example.com]
                forwardClaims: [{claim: sub, header: X-User-ID}]
            - name: per-user
              rateLimit: {requests: 100, per: 1s, burst: 200, key: {claim: sub}}
            # Machines use OAuth 2.0 client credentials: opaque tokens from /auth/token,
            # checked with the auth service's introspection endpoint (answers are cached).
            - name: machine-token
              oauth2:
                introspection: {service: auth-service, path: /auth/introspect}
                clientId: gantry
                clientSecret: demo-introspection-secret   # a demo value; use clientSecretFile for real ones
                requiredScopes: [orders:read]
                forwardClaims: [{claim: client_id, header: X-Client-ID}]
          routes:
            - {host: example.com, path: /auth, service: auth-service}
            - {host: example.com, path: /app, service: app-service, policies: [user-token, per-user]}
            - {host: example.com, path: /api, service: app-service, policies: [machine-token]}
        services:
          - name: auth-service
            pods:
              command: [gantry, example, auth-service]
              env:
                - {name: DATABASE_PATH, value: .gantry/data/auth.sqlite}
                - {name: GANTRY_CLIENT_SECRET, value: demo-introspection-secret}
              replicas: 1
              port: 8080
              resources: {requests: {cpu: 100m, memory: 64MiB}}
              terminationGracePeriodSeconds: 10
              readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1, failureThreshold: 2}
              livenessProbe: {httpGet: {path: /healthz}, initialDelaySeconds: 5, periodSeconds: 5}
          - name: app-service
            loadBalancing: leastRequest
            pods:
              command: [gantry, example, app-service]
              env: [{name: DATABASE_PATH, value: .gantry/data/app.sqlite}]
              replicas: 2
              port: 8080
              resources: {requests: {cpu: 250m, memory: 64MiB}}
              terminationGracePeriodSeconds: 10
              readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1, failureThreshold: 2}
              livenessProbe: {httpGet: {path: /healthz}, initialDelaySeconds: 5, periodSeconds: 5}
            # 2 pods at rest, up to 6 under load; back down a minute after the load is gone
            # (Kubernetes waits 5 minutes by default).
            autoscaling:
              minReplicas: 2
              maxReplicas: 6
              metrics:
                - {cpu: {averageUtilization: 60}}
                - {requestsPerSecond: {averageValue: 20}}
              behavior:
                scaleDown: {stabilizationWindowSeconds: 60}

        """
}
