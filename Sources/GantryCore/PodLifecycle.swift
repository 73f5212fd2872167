/// `restartPolicy` of a pod.
public enum RestartPolicy: String, Sendable, Hashable, CaseIterable {
    case always = "Always"
    case onFailure = "OnFailure"
    case never = "Never"

    public func restarts(afterExitCode code: Int32) -> Bool {
        switch self {
        case .always: return true
        case .onFailure: return code != 0
        case .never: return false
        }
    }
}

/// Which probe a result belongs to.
public enum ProbeKind: String, Sendable, Hashable {
    case startup, readiness, liveness
}

/// One pod's state as the kubelet keeps it, driven by events: the process started or exited,
/// a probe answered, termination was asked for. It decides; the supervisor does the I/O. Time
/// is a parameter, so the whole lifecycle is table-testable.
///
/// Rules (Kubernetes'): the startup probe gates the other two; a failing startup or liveness
/// probe kills the container, which then restarts per `restartPolicy` with CrashLoopBackOff;
/// readiness only decides whether the pod receives traffic; a terminating pod is never ready.
public struct PodLifecycle: Sendable {
    public enum Phase: String, Sendable, Hashable {
        /// Not running yet: starting for the first time or waiting out a restart backoff.
        case pending = "Pending"
        case running = "Running"
        /// Exited 0 and not restarted.
        case succeeded = "Succeeded"
        /// Exited non-zero and not restarted.
        case failed = "Failed"
    }

    /// What the supervisor must do after an event.
    public enum Action: Sendable, Equatable {
        case none
        /// Stop the container (SIGTERM, then SIGKILL after the grace period); its exit then
        /// arrives as an event like any other.
        case kill(reason: String)
        /// Start the container again after this delay.
        case restart(after: Duration)
        /// The pod is done for good: leave it stopped.
        case stop
    }

    public let restartPolicy: RestartPolicy
    public let hasStartupProbe: Bool
    public let hasReadinessProbe: Bool
    public let hasLivenessProbe: Bool
    public private(set) var phase: Phase = .pending
    public private(set) var reason: String = "ContainerCreating"
    public private(set) var restarts = 0
    public private(set) var started = false
    public private(set) var terminating = false
    public private(set) var lastExitCode: Int32?
    public private(set) var startup: ProbeTracker
    public private(set) var readiness: ProbeTracker
    public private(set) var liveness: ProbeTracker
    private var runningSince: ContinuousClock.Instant?
    private var killing = false
    private var backoff: RestartBackoff

    public init(
        restartPolicy: RestartPolicy, startupProbe: Probe?, readinessProbe: Probe?, livenessProbe: Probe?,
        backoff: RestartBackoff = RestartBackoff()
    ) {
        self.restartPolicy = restartPolicy
        hasStartupProbe = startupProbe != nil
        hasReadinessProbe = readinessProbe != nil
        hasLivenessProbe = livenessProbe != nil
        startup = ProbeTracker(successThreshold: 1, failureThreshold: startupProbe?.failureThreshold ?? 3)
        readiness = ProbeTracker(successThreshold: readinessProbe?.successThreshold ?? 1, failureThreshold: readinessProbe?.failureThreshold ?? 3)
        liveness = ProbeTracker(successThreshold: 1, failureThreshold: livenessProbe?.failureThreshold ?? 3)
        self.backoff = backoff
    }

    /// Receives traffic: running, started, passing readiness (or having no readiness probe)
    /// and not terminating.
    public var ready: Bool {
        guard phase == .running, started, !terminating, !killing else { return false }
        return hasReadinessProbe ? readiness.verdict == .passing : true
    }

    /// Which probes run now: startup until it passes, then readiness and liveness.
    public func runs(_ kind: ProbeKind) -> Bool {
        guard phase == .running, !terminating, !killing else { return false }
        switch kind {
        case .startup: return hasStartupProbe && !started
        case .readiness: return hasReadinessProbe && started
        case .liveness: return hasLivenessProbe && started
        }
    }

    public mutating func processStarted(at now: ContinuousClock.Instant) {
        phase = .running
        reason = "Running"
        runningSince = now
        started = !hasStartupProbe
        killing = false
        startup = ProbeTracker(successThreshold: 1, failureThreshold: startup.failureThreshold)
        readiness = ProbeTracker(successThreshold: readiness.successThreshold, failureThreshold: readiness.failureThreshold)
        liveness = ProbeTracker(successThreshold: 1, failureThreshold: liveness.failureThreshold)
    }

    /// A process an earlier gantry started, taken over running, as the kubelet does with the
    /// containers it finds after a restart. `started`: it had passed its startup probe; `ready`:
    /// the gantry that handed it over saw it ready a moment ago (a gantry that died saw nothing,
    /// so its pods wait for their readiness probe). The probes decide from here.
    public mutating func processAdopted(at now: ContinuousClock.Instant, restarts: Int, started: Bool, ready: Bool) {
        processStarted(at: now)
        self.restarts = restarts
        self.started = started || !hasStartupProbe
        if ready, self.started {
            for _ in 0..<readiness.successThreshold { readiness.record(success: true) }
        }
    }

    public mutating func probed(_ kind: ProbeKind, success: Bool) -> Action {
        guard runs(kind) else { return .none }
        switch kind {
        case .startup:
            switch startup.record(success: success) {
            case .passing: started = true
            case .failing: return kill(reason: "StartupProbeFailed")
            default: break
            }
        case .readiness:
            readiness.record(success: success)
        case .liveness:
            if liveness.record(success: success) == .failing { return kill(reason: "LivenessProbeFailed") }
        }
        return .none
    }

    /// The process exited (by itself, by a signal, or because gantry stopped it).
    public mutating func processExited(code: Int32, at now: ContinuousClock.Instant) -> Action {
        let ranFor = runningSince.map { now - $0 } ?? .zero
        runningSince = nil
        killing = false
        lastExitCode = code
        if terminating {
            phase = code == 0 ? .succeeded : .failed
            reason = "Terminated"
            return .stop
        }
        guard restartPolicy.restarts(afterExitCode: code) else {
            phase = code == 0 ? .succeeded : .failed
            reason = code == 0 ? "Completed" : "Error"
            return .stop
        }
        restarts += 1
        phase = .pending
        let delay = backoff.exited(afterRunning: ranFor)
        reason = delay == .zero ? "Restarting" : "CrashLoopBackOff"
        return .restart(after: delay)
    }

    /// A process taken over ended, with an exit status gantry cannot know (it is not its
    /// parent): restarted unless the policy is Never, as after a failure, since a clean exit
    /// cannot be told apart from one.
    public mutating func processVanished(at now: ContinuousClock.Instant) -> Action {
        let action = processExited(code: terminating ? 0 : 1, at: now)
        lastExitCode = nil
        if !terminating, phase == .failed { reason = "Unknown" }
        return action
    }

    /// The process could not be started at all (missing executable, bad working directory).
    public mutating func startFailed(at now: ContinuousClock.Instant) -> Action {
        lastExitCode = nil
        if terminating {
            phase = .failed
            return .stop
        }
        guard restartPolicy != .never else {
            phase = .failed
            reason = "StartError"
            return .stop
        }
        restarts += 1
        phase = .pending
        reason = "CrashLoopBackOff"
        return .restart(after: max(backoff.exited(afterRunning: .zero), backoff.initial))
    }

    /// Scale-down, rollout or shutdown: the pod leaves the endpoints and is never restarted.
    public mutating func beginTermination() {
        terminating = true
        reason = "Terminating"
    }

    private mutating func kill(reason: String) -> Action {
        killing = true
        self.reason = reason
        return .kill(reason: reason)
    }
}
