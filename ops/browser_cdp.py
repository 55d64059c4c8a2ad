#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (CDP) for ops/browser-test.

Standard library only: a minimal WebSocket client (RFC 6455, text frames, client masking) is
enough for CDP. Loads the dashboard at 1280x800, checks that the job's percentage changes on
the live page (the page's own script polls), then checks the DOM at 1280x800 and at 390x844: the
counts by state match SQL's, the stale job carries its marker, no element is wider than the
viewport, rows are one line tall at 1280 px with 25 or more on the screen, and names get room on
a phone. Takes screenshots of the list, a job (and its Governor section at 1280 px), the stale
job and the workers at both sizes into SCREENSHOT_DIR, then clicks the job's Pause button with real mouse events.

    browser_cdp.py DEVTOOLS_PORT DASHBOARD_URL JOB_ID STALE_JOB_ID COUNTS_JSON SCREENSHOT_DIR
Prints one line per step; exits 1 on the first failure.
"""
import base64, json, os, re, socket, struct, sys, time, urllib.parse, urllib.request


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


def screenshot(page, path):
    data = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))
    print(f"browser: screenshot {path}", flush=True)


def viewport(page, width, height, mobile):
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)


def load(page, url, ready):
    page.call("Page.navigate", url=url)
    wait_for(f"{url} to load", lambda: page.evaluate(f"document.readyState === 'complete' && !!document.querySelector('{ready}')"), 30)


def too_wide(page):
    """Elements wider than the viewport or reaching past its right edge (at most five)."""
    return page.evaluate("""(() => { const w = document.documentElement.clientWidth; const wide = [];
        if (document.documentElement.scrollWidth > w) wide.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
        // What an ancestor cuts off (overflow hidden or clip, as a cell ending in an ellipsis) is
        // not wider than the screen; the ancestor itself is checked. A table that merely scrolls
        // inside its box (overflow auto) still counts.
        const clipped = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
            if (['hidden', 'clip'].includes(getComputedStyle(a).overflowX)) return true; return false; };
        for (const e of document.querySelectorAll('body *')) { const r = e.getBoundingClientRect();
            if (r.width > 0 && (r.right > w + 1 || r.width > w) && !clipped(e))
                wide.push(e.tagName + '.' + e.className + ' ' + Math.round(r.width) + 'px'); }
        return wide.slice(0, 5); })()""")


def check_list(page, width, height, counts, stale_job):
    """The DOM checks of the jobs list at one viewport size."""
    shown = page.evaluate("""Object.fromEntries([...document.querySelectorAll('.counts [data-state]')]
        .map(a => [a.dataset.state, Number(a.querySelector('b').textContent)]))""")
    for state, expected in counts.items():
        if shown.get(state) is None:
            fail(f"at {width} px the counts by state show no {state}: {shown}")
        # A count may move while the backfill runs; the seeded states do not.
        if state != "running" and shown[state] != expected:
            fail(f"at {width} px the page counts {shown[state]} {state}, SQL counts {expected}")
    print(f"browser: {width} px: counts by state {shown}", flush=True)
    if not page.evaluate(f"!!document.querySelector('tr[data-job=\"{stale_job}\"] [data-stale]')"):
        fail(f"at {width} px the stale job {stale_job} carries no stale marker")
    print(f"browser: {width} px: job {stale_job} is marked stale", flush=True)
    return too_wide(page)


def check_changes(page, url, name, width, height, shots):
    """The changes list and the change's page at one viewport size: the change's name (which
    holds markup) shown as text in its row and its heading, and nothing wider than the screen."""
    load(page, url.rstrip("/") + "/changes", "#changes tr[data-change]")
    screenshot(page, f"{shots}/changes-{width}x{height}.png")
    shown = page.evaluate("document.querySelector('#changes tr[data-change] td.name a').textContent")
    if shown != name:
        fail(f"at {width} px the changes list shows the change as {shown!r}, not {name!r}")
    if page.evaluate("!!document.querySelector('main i')"):
        fail(f"at {width} px the change's name reached the changes list as markup")
    wide = too_wide(page)
    if wide:
        fail(f"at {width} px the changes list has elements wider than the screen: {wide}")
    load(page, url.rstrip("/") + "/change?name=" + urllib.parse.quote(name, safe=""), "dl.facts")
    screenshot(page, f"{shots}/change-{width}x{height}.png")
    heading = page.evaluate("document.querySelector('main h1').firstChild.textContent")
    if heading.strip() != name:
        fail(f"at {width} px the change's page is headed {heading!r}, not {name!r}")
    if page.evaluate("!!document.querySelector('main i')"):
        fail(f"at {width} px the change's name reached its page as markup")
    objects = page.evaluate("document.querySelectorAll('table.objects tbody tr').length")
    if objects != 1:
        fail(f"at {width} px the change's page lists {objects} indexes and constraints, not its one index")
    wide = too_wide(page)
    if wide:
        fail(f"at {width} px the change's page has elements wider than the screen: {wide}")
    print(f"browser: {width} px: the changes list and the change's page show its name as text, nothing too wide",
          flush=True)


def main():
    devtools_port, url, job_id, stale_job, counts_json, shots = sys.argv[1:7]
    change_name = sys.argv[7] if len(sys.argv) > 7 else None
    counts = json.loads(counts_json)
    os.makedirs(shots, exist_ok=True)
    targets = wait_for("Chromium's DevTools endpoint", lambda: _targets(devtools_port), 30)
    page_target = next((t for t in targets if t.get("type") == "page"), None) or fail("no page target")
    page = Page(page_target["webSocketDebuggerUrl"])
    page.call("Page.enable")
    page.call("Runtime.enable")

    # A desktop: one line a job, 25 or more on the screen.
    viewport(page, 1280, 800, False)
    row = f'tr[data-job="{job_id}"]'
    load(page, url, row)
    read = f"(document.querySelector('{row} .percent')||{{}}).textContent"
    first = page.evaluate(read)
    print(f"browser: the live page shows the job at {first}", flush=True)
    later = wait_for("the percentage to change on the live page",
                     lambda: (lambda v: v if v and v != first else None)(page.evaluate(read)), 30)
    print(f"browser: the page updated itself to {later}", flush=True)
    screenshot(page, f"{shots}/jobs-1280x800.png")
    wide = check_list(page, 1280, 800, counts, stale_job)
    if wide:
        fail(f"at 1280 px elements are wider than the window: {wide}")
    heights = page.evaluate("[...document.querySelectorAll('#jobs tbody tr')].map(r => r.getBoundingClientRect().height)")
    tallest = max(heights)
    if tallest > 34:
        fail(f"at 1280 px a job's row is {tallest:.0f} px tall (one line is at most 34 px)")
    visible = page.evaluate("[...document.querySelectorAll('#jobs tbody tr')].filter(r => r.getBoundingClientRect().bottom <= innerHeight).length")
    if visible < 25:
        fail(f"at 1280x800 only {visible} jobs are on the screen (25 or more expected)")
    print(f"browser: 1280 px: rows at most {tallest:.0f} px tall, {visible} jobs on the screen", flush=True)
    load(page, url.rstrip("/") + f"/jobs/{job_id}", "svg.chart.governor")
    screenshot(page, f"{shots}/job-1280x800.png")
    # The governor's section: its size, settings, recent batches (newest first) and chart.
    batches = page.evaluate("""(() => { const h = [...document.querySelectorAll('h2')].find(e => e.textContent === 'Governor');
        if (!h) return null; h.scrollIntoView({block: 'start'});
        return document.querySelectorAll('table.batches tr[data-batch]').length; })()""")
    if not batches:
        fail("the job's page has no Governor section with recent batches")
    screenshot(page, f"{shots}/job-governor-1280x800.png")
    print(f"browser: 1280 px: the Governor section lists {batches} recent batches", flush=True)
    load(page, url.rstrip("/") + f"/jobs/{stale_job}", "[data-stale]")
    screenshot(page, f"{shots}/stale-job-1280x800.png")
    load(page, url.rstrip("/") + "/workers", "#workers")
    screenshot(page, f"{shots}/workers-1280x800.png")
    if change_name:
        check_changes(page, url, change_name, 1280, 800, shots)

    # A phone: nothing wider than the screen, names wrap at word boundaries.
    viewport(page, 390, 844, True)
    load(page, url, row)
    screenshot(page, f"{shots}/jobs-390x844.png")
    wide = check_list(page, 390, 844, counts, stale_job)
    if wide:
        fail(f"at 390 px elements are wider than the screen: {wide}")
    narrow = page.evaluate("""[...document.querySelectorAll('#jobs td.name')].filter(td => td.getBoundingClientRect().width < 150)
        .map(td => td.textContent + ' ' + Math.round(td.getBoundingClientRect().width) + 'px')""")
    if narrow:
        fail(f"at 390 px names are squeezed into narrow columns: {narrow[:3]}")
    print("browser: 390 px: no element wider than the screen; names get the card's width", flush=True)
    load(page, url.rstrip("/") + f"/jobs/{job_id}", "svg.chart.governor")
    screenshot(page, f"{shots}/job-390x844.png")
    wide = too_wide(page)
    if wide:
        fail(f"at 390 px the job's page has elements wider than the screen: {wide}")
    load(page, url.rstrip("/") + "/workers", "#workers")
    screenshot(page, f"{shots}/workers-390x844.png")
    wide = too_wide(page)
    if wide:
        fail(f"at 390 px the workers page has elements wider than the screen: {wide}")
    if change_name:
        check_changes(page, url, change_name, 390, 844, shots)

    viewport(page, 1280, 800, False)
    load(page, url, row)
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
