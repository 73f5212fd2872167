"""The built-in example run by a benchmark: its file with free ports, gantry started on it, the
demo user logged in, and the admin API's views (pods, /metrics). Shared by chaos.py and soak.py."""
import http.client, json, os, re, socket, subprocess, time

DEMO_PASSWORD = "benchmark-demo-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExampleStack:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.web, self.tls, self.dns, self.admin = free_port(), free_port(), free_port(), free_port()
        self.process = None

    def config(self):
        """`gantry example config` on free ports, with a known demo password and the admin API."""
        text = subprocess.run([self.binary, "example", "config"], capture_output=True, text=True, check=True).stdout
        text = text.replace("{name: web, port: 8080}", "{name: web, port: %d}" % self.web)
        text = text.replace("{name: https, port: 8443,", "{name: https, port: %d," % self.tls)
        text = text.replace("listen: 127.0.0.1:5353", "listen: 127.0.0.1:%d" % self.dns)
        text = text.replace("        - {name: GANTRY_CLIENT_SECRET, value: demo-introspection-secret}",
                            "        - {name: GANTRY_CLIENT_SECRET, value: demo-introspection-secret}\n"
                            "        - {name: DEMO_PASSWORD, value: %s}" % DEMO_PASSWORD)
        return text + "admin: {port: %d}\n" % self.admin

    def start(self, config, ready_pods=3):
        path = os.path.join(self.work, "gantry.yaml")
        with open(path, "w") as f:
            f.write(config)
        self.stderr = os.path.join(self.work, "gantry.err")
        self.process = subprocess.Popen([self.binary, "up", path, "--no-watch"], cwd=self.work,
                                        stderr=open(self.stderr, "w"), stdout=subprocess.DEVNULL)
        if not wait_for(lambda: len([p for p in self.pods() if p["ready"]]) == ready_pods):
            raise SystemExit("gantry did not get ready; see " + self.stderr)
        return self.process

    def token(self):
        login = http.client.HTTPConnection("127.0.0.1", self.web, timeout=10)
        login.request("POST", "/auth/login", body=json.dumps({"username": "demo", "password": DEMO_PASSWORD}),
                      headers={"Host": "example.com"})
        return json.loads(login.getresponse().read())["access_token"]

    def admin_get(self, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        connection.request("GET", path)
        return connection.getresponse().read()

    def admin_post(self, path, body):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        connection.request("POST", path, body=json.dumps(body))
        return connection.getresponse().read()

    def counter(self, name):
        text = self.admin_get("/metrics").decode()
        match = re.search(r"^%s(?:\{[^}]*\})? ([0-9.e+]+)$" % re.escape(name), text, re.M)
        return float(match.group(1)) if match else 0.0

    def pods(self, service=None):
        return [p for p in json.loads(self.admin_get("/api/pods")) if service is None or p["service"] == service]

    def rss_kib(self):
        with open("/proc/%d/status" % self.process.pid) as f:
            return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False
