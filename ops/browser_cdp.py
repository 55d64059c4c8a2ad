#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (CDP) for ops/browser-test.

Standard library only: a minimal WebSocket client (RFC 6455, text frames, client masking) is
enough for CDP. Loads the dashboard, checks that the job's percentage changes on the live page
(the page's own script polls), then clicks the job's Pause button with real mouse events.

    browser_cdp.py DEVTOOLS_PORT DASHBOARD_URL JOB_ID
Prints one line per step; exits 1 on the first failure.
"""
import base64, json, os, re, socket, struct, sys, time, urllib.request


class WebSocket:
    def __init__(self, url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("the DevTools socket closed during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("no WebSocket upgrade: " + head.decode(errors="replace"))

    def send(self, text):
        data = text.encode()
        header = bytes([0x81])
        n = len(data)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise RuntimeError("the DevTools socket closed")
            out += chunk
        return out

    def receive(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise RuntimeError("the DevTools socket closed")
            if opcode in (0, 1):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class Page:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def fail(message):
    print(f"browser: FAIL: {message}", flush=True)
    sys.exit(1)


def wait_for(what, probe, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    fail(f"timed out after {seconds} s waiting for {what}")


def main():
    devtools_port, url, job_id = sys.argv[1], sys.argv[2], sys.argv[3]
    targets = wait_for("Chromium's DevTools endpoint", lambda: _targets(devtools_port), 30)
    page_target = next((t for t in targets if t.get("type") == "page"), None) or fail("no page target")
    page = Page(page_target["webSocketDebuggerUrl"])
    page.call("Page.enable")
    page.call("Runtime.enable")
    page.call("Page.navigate", url=url)
    row = f'tr[data-job="{job_id}"]'
    wait_for("the job's row", lambda: page.evaluate(f"!!document.querySelector('{row}')"), 30)
    read = f"(document.querySelector('{row} .percent')||{{}}).textContent"
    first = page.evaluate(read)
    print(f"browser: the live page shows the job at {first}", flush=True)
    later = wait_for("the percentage to change on the live page",
                     lambda: (lambda v: v if v and v != first else None)(page.evaluate(read)), 30)
    print(f"browser: the page updated itself to {later}", flush=True)
    box = page.evaluate(f"""(() => {{ const b = document.querySelector('{row} button[data-action="pause"]');
        if (!b) return null; b.scrollIntoView({{block: 'center'}}); const r = b.getBoundingClientRect();
        return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()""")
    if not box:
        fail("no Pause button in the job's row")
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)
    print(f"browser: clicked Pause at ({box['x']:.0f}, {box['y']:.0f})", flush=True)


def _targets(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


if __name__ == "__main__":
    main()
