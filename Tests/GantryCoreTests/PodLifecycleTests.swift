import Testing

@testable import GantryCore

struct ProbeTrackerTests {
    @Test func verdictNeedsConsecutiveResults() {
        var tracker = ProbeTracker(successThreshold: 2, failureThreshold: 3)
        #expect(tracker.verdict == .unknown)
        #expect(tracker.record(success: true) == nil)
        #expect(tracker.record(success: false) == nil)  // streak broken
        #expect(tracker.record(success: true) == nil)
        #expect(tracker.record(success: true) == .passing)
        #expect(tracker.record(success: false) == nil)
        #expect(tracker.record(success: false) == nil)
        #expect(tracker.verdict == .passing)  // two failures of three: still passing
        #expect(tracker.record(success: false) == .failing)
        #expect(tracker.record(success: false) == nil)  // no repeated transition
    }
}

struct RestartBackoffTests {
    @Test func crashLoopBackOffDoublesToFiveMinutesAndResetsAfterTenMinutesOfRunning() {
        var backoff = RestartBackoff()
        let delays = (0..<8).map { _ in backoff.exited(afterRunning: .seconds(1)) }
        #expect(delays == [.zero, .seconds(10), .seconds(20), .seconds(40), .seconds(80), .seconds(160), .seconds(300), .seconds(300)])
        #expect(backoff.exited(afterRunning: .seconds(600)) == .zero)
        #expect(backoff.exited(afterRunning: .seconds(1)) == .seconds(10))
    }

    @Test func configurableTiming() {
        var backoff = RestartBackoff(initial: .milliseconds(100), maximum: .milliseconds(250))
        let delays = (0..<4).map { _ in backoff.exited(afterRunning: .zero) }
        #expect(delays == [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(250)])
        #expect(backoff.resetAfter == .milliseconds(500))
    }
}

struct RestartPolicyTests {
    @Test(arguments: [
        (RestartPolicy.always, Int32(0), true), (.always, 1, true), (.onFailure, 0, false), (.onFailure, 137, true),
        (.never, 0, false), (.never, 1, false),
    ])
    func restartsPerPolicy(policy: RestartPolicy, code: Int32, restarts: Bool) {
        #expect(policy.restarts(afterExitCode: code) == restarts)
    }
}

struct PodLifecycleTests {
    let http = Probe.Action.httpGet(path: "/healthz", port: 8080, headers: [])
    let start = ContinuousClock.now

    @Test func withoutProbesAPodIsReadyOnceRunning() {
        var pod = PodLifecycle(restartPolicy: .always, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        #expect(pod.phase == .pending)
        #expect(!pod.ready)
        pod.processStarted(at: start)
        #expect(pod.phase == .running)
        #expect(pod.ready)
    }

    /// A pod taken over from a gantry that handed it over ready serves at once; one left by a
    /// dead gantry waits for its probes; its restart count carries over.
    @Test func anAdoptedPodKeepsWhatItsPreviousGantryKnew() {
        var handed = PodLifecycle(
            restartPolicy: .always, startupProbe: Probe(action: http), readinessProbe: Probe(action: http, successThreshold: 2), livenessProbe: nil)
        handed.processAdopted(at: start, restarts: 3, started: true, ready: true)
        #expect(handed.ready)
        #expect(handed.restarts == 3)
        #expect(!handed.runs(.startup))
        #expect(handed.runs(.readiness))

        var left = PodLifecycle(
            restartPolicy: .always, startupProbe: Probe(action: http), readinessProbe: Probe(action: http), livenessProbe: nil)
        left.processAdopted(at: start, restarts: 0, started: false, ready: false)
        #expect(!left.ready)
        #expect(left.runs(.startup))
        _ = left.probed(.startup, success: true)
        _ = left.probed(.readiness, success: true)
        #expect(left.ready)
    }

    /// gantry cannot read the exit status of a process it did not start: OnFailure restarts
    /// it, Never leaves it failed with reason Unknown, and no exit code is made up.
    @Test func anAdoptedProcessThatEndsIsRestartedAsAfterAFailure() {
        var onFailure = PodLifecycle(restartPolicy: .onFailure, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        onFailure.processAdopted(at: start, restarts: 0, started: false, ready: false)
        #expect(onFailure.processVanished(at: start + .seconds(1)) == .restart(after: .zero))
        #expect(onFailure.lastExitCode == nil)
        #expect(onFailure.restarts == 1)

        var never = PodLifecycle(restartPolicy: .never, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        never.processAdopted(at: start, restarts: 0, started: false, ready: false)
        #expect(never.processVanished(at: start + .seconds(1)) == .stop)
        #expect(never.phase == .failed)
        #expect(never.reason == "Unknown")

        var leaving = PodLifecycle(restartPolicy: .always, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        leaving.processAdopted(at: start, restarts: 0, started: false, ready: false)
        leaving.beginTermination()
        #expect(leaving.processVanished(at: start + .seconds(1)) == .stop)
        #expect(leaving.phase == .succeeded)
    }

    @Test func readinessGatesTrafficOnly() {
        var pod = PodLifecycle(
            restartPolicy: .always, startupProbe: nil, readinessProbe: Probe(action: http, failureThreshold: 2), livenessProbe: nil)
        pod.processStarted(at: start)
        #expect(!pod.ready)
        #expect(pod.probed(.readiness, success: true) == .none)
        #expect(pod.ready)
        #expect(pod.probed(.readiness, success: false) == .none)
        #expect(pod.ready)
        #expect(pod.probed(.readiness, success: false) == .none)  // failing: out of endpoints, not killed
        #expect(!pod.ready)
        #expect(pod.phase == .running)
    }

    @Test func startupProbeGatesTheOthersAndItsFailureKills() {
        var pod = PodLifecycle(
            restartPolicy: .always, startupProbe: Probe(action: http, failureThreshold: 2), readinessProbe: Probe(action: http),
            livenessProbe: Probe(action: http))
        pod.processStarted(at: start)
        #expect(pod.runs(.startup))
        #expect(!pod.runs(.readiness))
        #expect(!pod.runs(.liveness))
        #expect(pod.probed(.readiness, success: true) == .none)  // ignored before startup passes
        #expect(!pod.ready)
        #expect(pod.probed(.startup, success: false) == .none)
        #expect(pod.probed(.startup, success: false) == .kill(reason: "StartupProbeFailed"))
        #expect(!pod.ready)
        #expect(!pod.runs(.startup))  // no probing while being killed
    }

    @Test func startedPodRunsReadinessAndLiveness() {
        var pod = PodLifecycle(
            restartPolicy: .always, startupProbe: Probe(action: http), readinessProbe: Probe(action: http),
            livenessProbe: Probe(action: http))
        pod.processStarted(at: start)
        _ = pod.probed(.startup, success: true)
        #expect(pod.started)
        #expect(!pod.runs(.startup))
        #expect(pod.runs(.readiness) && pod.runs(.liveness))
    }

    @Test func livenessFailureKillsAndTheExitRestartsWithBackoff() {
        var pod = PodLifecycle(restartPolicy: .always, startupProbe: nil, readinessProbe: nil, livenessProbe: Probe(action: http))
        pod.processStarted(at: start)
        #expect(pod.probed(.liveness, success: false) == .none)
        #expect(pod.probed(.liveness, success: false) == .none)
        #expect(pod.probed(.liveness, success: false) == .kill(reason: "LivenessProbeFailed"))
        #expect(!pod.ready)
        #expect(pod.processExited(code: 143, at: start + .seconds(5)) == .restart(after: .zero))
        #expect(pod.restarts == 1)
        #expect(pod.phase == .pending)
        pod.processStarted(at: start + .seconds(6))
        #expect(pod.ready)
        #expect(pod.processExited(code: 1, at: start + .seconds(7)) == .restart(after: .seconds(10)))
        #expect(pod.reason == "CrashLoopBackOff")
        #expect(pod.lastExitCode == 1)
    }

    @Test func exitsFollowTheRestartPolicy() {
        var never = PodLifecycle(restartPolicy: .never, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        never.processStarted(at: start)
        #expect(never.processExited(code: 0, at: start) == .stop)
        #expect(never.phase == .succeeded)

        var onFailure = PodLifecycle(restartPolicy: .onFailure, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        onFailure.processStarted(at: start)
        #expect(onFailure.processExited(code: 2, at: start) == .restart(after: .zero))
        onFailure.processStarted(at: start)
        #expect(onFailure.processExited(code: 0, at: start) == .stop)
        #expect(onFailure.phase == .succeeded)
    }

    @Test func aTerminatingPodIsNeverReadyAndNeverRestarted() {
        var pod = PodLifecycle(restartPolicy: .always, startupProbe: nil, readinessProbe: nil, livenessProbe: nil)
        pod.processStarted(at: start)
        pod.beginTermination()
        #expect(!pod.ready)
        #expect(!pod.runs(.readiness))
        #expect(pod.processExited(code: 143, at: start) == .stop)
        #expect(pod.restarts == 0)
    }

    @Test func podNamesLookLikeAReplicaSets() {
        var random = FastRandom(seed: 42)
        let names = (0..<100).map { _ in PodName.generate(for: "app-service", using: &random) }
        for name in names {
            #expect(name.hasPrefix("app-service-"))
            let suffix = name.dropFirst("app-service-".count)
            #expect(suffix.count == 5)
            #expect(suffix.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) })
        }
        #expect(Set(names).count > 95)
    }
}
