// Conformance suite: the official phoenix.js client (npm phoenix@1.8.16 over ws@8.23.0) against
// phx-testserver. Every scenario of "Official client check" in
// tests/fixtures/phoenix-1.7-transcripts.md, every row of tests/fixtures/test-app.md (presence via
// phoenix.js's Presence class, as in tests/fixtures/phoenix-1.7-presence-transcripts.md) and every fault
// control of docs/testserver.md.
//
// Run: scripts/js-conformance.sh (or `node --test` in tests/js with PHX_TESTSERVER_BIN set).
//
// Synchronisation is event driven: callbacks feed a Recorder and tests await predicates over what was
// recorded. Absences are proven with the client's own push timeout. The only polling is on the
// server's stats endpoint for counters that change after the client has already seen the event.

import {describe, it, before, after, afterEach} from "node:test"
import assert from "node:assert/strict"
import {spawn} from "node:child_process"
import {existsSync} from "node:fs"
import {dirname, resolve} from "node:path"
import {fileURLToPath} from "node:url"
import {createInterface} from "node:readline"
import {performance} from "node:perf_hooks"
import WebSocket from "ws"
import {Socket, Presence} from "phoenix"

const HERE = dirname(fileURLToPath(import.meta.url))
const BIN = resolve(HERE, process.env.PHX_TESTSERVER_BIN || "../../target/debug/phx-testserver")

const TEST_TIMEOUT = 20000
const WAIT_TIMEOUT = 4000

// ---------------------------------------------------------------------------------------------------
// test server process

const servers = new Set()

async function startServer(extraArgs = []){
  if(!existsSync(BIN)){
    throw new Error(`phx-testserver binary not found at ${BIN} (build it with \`cargo build -p phx-testserver\` or set PHX_TESTSERVER_BIN)`)
  }
  const proc = spawn(BIN, ["--port", "0", "--exit-on-stdin-eof", ...extraArgs], {stdio: ["pipe", "pipe", "pipe"]})
  let stderr = ""
  proc.stderr.setEncoding("utf8")
  proc.stderr.on("data", d => { stderr = (stderr + d).slice(-16384) })
  proc.stdin.on("error", () => {})
  const exited = new Promise(res => proc.once("exit", (code, signal) => res({code, signal})))
  const lines = createInterface({input: proc.stdout})
  const firstLine = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`phx-testserver printed no URL within 5 s; stderr: ${stderr}`)), 5000)
    lines.once("line", line => { clearTimeout(timer); res(line) })
    proc.once("error", e => { clearTimeout(timer); rej(e) })
    exited.then(({code, signal}) => {
      clearTimeout(timer)
      rej(new Error(`phx-testserver exited (code ${code}, signal ${signal}) before printing its URL; stderr: ${stderr}`))
    })
  })
  // keep draining stdout (the server prints nothing else, but a full pipe must never block it)
  lines.on("line", () => {})
  const url = firstLine.trim()
  assert.match(url, /^ws:\/\/[^/]+\/socket\/websocket$/, `first stdout line must be the WebSocket URL, got ${JSON.stringify(firstLine)}`)
  const server = {
    url,
    endpoint: url.replace(/\/websocket$/, ""),
    base: url.replace(/^ws:/, "http:").replace(/\/socket\/websocket$/, ""),
    proc,
    exited,
    stderr: () => stderr,
    async stop(){
      servers.delete(server)
      if(proc.exitCode !== null || proc.signalCode !== null){ return }
      proc.stdin.end()
      proc.kill("SIGTERM")
      const killer = setTimeout(() => proc.kill("SIGKILL"), 3000)
      await exited
      clearTimeout(killer)
    },
  }
  servers.add(server)
  return server
}

after(async () => { await Promise.all([...servers].map(s => s.stop())) })

async function control(server, name, query = {}, {method = "POST", expectStatus = 200} = {}){
  const qs = new URLSearchParams(query).toString()
  const res = await fetch(`${server.base}/control/${name}${qs ? "?" + qs : ""}`, {method})
  const text = await res.text()
  assert.equal(res.status, expectStatus, `/control/${name}?${qs} answered ${res.status} ${text}`)
  if(expectStatus !== 200){ return text }
  try { return JSON.parse(text) } catch(e){ assert.fail(`/control/${name} answered non-JSON: ${JSON.stringify(text)}`) }
}

const stats = server => control(server, "stats", {}, {method: "GET"})
const serverLog = server => control(server, "log", {}, {method: "GET"})
const okBody = body => assert.deepEqual(body, {ok: true})

// Retries `check` until it stops throwing. Only for server-side counters that the server updates
// after the client already observed the corresponding event (e.g. a closed connection).
async function eventually(check, timeoutMs = 2000){
  const deadline = Date.now() + timeoutMs
  for(;;){
    try { return await check() } catch(e){
      if(Date.now() > deadline){ throw e }
      await new Promise(r => setTimeout(r, 25))
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// event recording

class Recorder {
  constructor(name){ this.name = name; this.items = []; this.waiters = [] }

  push(item){
    item.at = performance.now()
    this.items.push(item)
    this.waiters = this.waiters.filter(w => {
      let v
      try { v = w.pred(this.items) } catch(e){ clearTimeout(w.timer); w.reject(e); return false }
      if(v){ clearTimeout(w.timer); w.resolve(v); return false }
      return true
    })
  }

  of(kind){ return this.items.filter(i => i.kind === kind) }

  // resolves with the first truthy value of pred(items), evaluated now and after every new item
  waitFor(pred, label, timeoutMs = WAIT_TIMEOUT){
    const v = pred(this.items)
    if(v){ return Promise.resolve(v) }
    return new Promise((resolve, reject) => {
      const w = {pred, resolve, reject}
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter(x => x !== w)
        const recent = this.items.slice(-15).map(i => JSON.stringify(i, replacer)).join("\n  ")
        reject(new Error(`[${this.name}] timed out after ${timeoutMs} ms waiting for: ${label}\n  last events:\n  ${recent}`))
      }, timeoutMs)
      this.waiters.push(w)
    })
  }

  waitCount(kind, n, label, timeoutMs){
    return this.waitFor(items => {
      const xs = items.filter(i => i.kind === kind)
      return xs.length >= n && xs
    }, label || `${n} x ${kind}`, timeoutMs)
  }
}

function replacer(_k, v){
  if(v instanceof ArrayBuffer){ return {ArrayBuffer: hex(v)} }
  return v
}

const hex = ab => Buffer.from(ab).toString("hex")
const bin = (...bytes) => new Uint8Array(bytes).buffer
const clone = x => x === undefined ? undefined : JSON.parse(JSON.stringify(x))

// ---------------------------------------------------------------------------------------------------
// phoenix.js clients

const sockets = new Set()

// A phoenix.js Socket plus a Recorder of everything it reports:
// open / close {code, reason, wasClean} / error {message} / msg {join_ref, ref, topic, event, payload} / log
function client(server, {token, params, ...opts} = {}){
  const rec = new Recorder(`socket${token ? " " + token : ""}`)
  const socket = new Socket(server.endpoint, {
    transport: WebSocket,
    params: params || (token ? {token} : {}),
    heartbeatIntervalMs: 30000,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 10000,
    timeout: 2000,
    logger: (kind, msg) => { if(kind === "transport" || kind === "channel"){ rec.push({kind: "log", k: kind, msg}) } },
    ...opts,
  })
  socket.onOpen(() => rec.push({kind: "open"}))
  socket.onClose(e => rec.push({kind: "close", code: e.code, reason: e.reason, wasClean: e.wasClean}))
  socket.onError(e => rec.push({kind: "error", message: (e && (e.message || (e.error && e.error.message))) || String(e)}))
  socket.onMessage(m => rec.push({kind: "msg", join_ref: m.join_ref, ref: m.ref, topic: m.topic, event: m.event, payload: m.payload}))
  sockets.add(socket)
  return {socket, rec, server}
}

async function connected(server, opts){
  const c = client(server, opts)
  c.socket.connect()
  await c.rec.waitCount("open", 1, "socket open")
  return c
}

function disconnect(socket){
  sockets.delete(socket)
  return new Promise(res => {
    const t = setTimeout(res, 3000)
    socket.disconnect(() => { clearTimeout(t); res() })
  })
}

afterEach(async () => { await Promise.all([...sockets].map(disconnect)) })

// resolves with ["ok", response] / ["error", response] / ["timeout"] for a phoenix.js Push
function outcome(push){
  return new Promise(res => {
    push.receive("ok", r => res(["ok", r]))
      .receive("error", r => res(["error", r]))
      .receive("timeout", () => res(["timeout"]))
  })
}

// A channel whose every join attempt result (first join and rejoins) is recorded as
// {kind: "join", topic, status, response}, plus server-sent phx_error/phx_close as
// {kind: "chan_error"|"chan_close", topic, payload}.
function channel(c, topic, params = {}){
  const ch = c.socket.channel(topic, params)
  for(const status of ["ok", "error", "timeout"]){
    ch.joinPush.receive(status, r => c.rec.push({kind: "join", topic, status, response: clone(r)}))
  }
  ch.onError(p => c.rec.push({kind: "chan_error", topic, payload: clone(p)}))
  ch.onClose(p => c.rec.push({kind: "chan_close", topic, payload: clone(p)}))
  return ch
}

const joinsOf = (c, topic, status = "ok") => c.rec.of("join").filter(j => j.topic === topic && j.status === status)
const msgs = (c, pred) => c.rec.of("msg").filter(pred)

// a raw push through the socket (not through a channel), e.g. to a topic never joined
function rawPush(c, topic, event, payload, joinRef = null){
  const ref = c.socket.makeRef()
  c.socket.push({topic, event, payload, ref, join_ref: joinRef})
  return c.rec.waitFor(items => items.find(i => i.kind === "msg" && i.ref === ref && i.event === "phx_reply"), `reply to raw ${event} ref ${ref}`)
}

// ---------------------------------------------------------------------------------------------------
// Official client check (phoenix-1.7-transcripts.md) and test-app.md rows

describe("official client check", () => {
  let server
  before(async () => { server = await startServer() })
  after(async () => { await server.stop() })

  it("connect token=hb: socket opens", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "hb"})
    assert.equal(c.socket.connectionState(), "open")
    assert.equal(c.rec.of("error").length, 0)
  })

  it("heartbeat replies: topic phoenix, join_ref null, status ok, response {}", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "hb", heartbeatIntervalMs: 100})
    const replies = await c.rec.waitFor(items => {
      const hb = items.filter(i => i.kind === "msg" && i.topic === "phoenix")
      return hb.length >= 2 && hb
    }, "two heartbeat replies")
    for(const r of replies){
      assert.deepEqual({join_ref: r.join_ref, topic: r.topic, event: r.event, payload: r.payload},
        {join_ref: null, topic: "phoenix", event: "phx_reply", payload: {response: {}, status: "ok"}})
      assert.match(r.ref, /^\d+$/)
    }
    assert.notEqual(replies[0].ref, replies[1].ref)
    assert.equal(c.rec.of("close").length, 0, "heartbeats answered: no close")
  })

  it("slow join blocks heartbeat replies -> client (short heartbeat) closes the socket itself", {timeout: TEST_TIMEOUT}, async () => {
    const c = client(server, {token: "hb", heartbeatIntervalMs: 1000, reconnectAfterMs: () => 10000, timeout: 10000})
    c.socket.connect()
    await c.rec.waitCount("open", 1)
    // the close handshake is observed on the transport itself: phoenix.js stops listening to a
    // connection it closed after ~1.5 s, and this server answers only once the slow join is done
    c.socket.conn.on("close", (code, reason) => c.rec.push({kind: "ws_close", code, reason: reason.toString()}))
    await control(server, "log", {clear: 1})
    const t0 = performance.now()
    channel(c, "room:slow").join()
    const timeoutLog = await c.rec.waitFor(items => items.find(i => i.kind === "log" && /heartbeat timeout/.test(i.msg)), "heartbeat timeout logged")
    // the timeout is noticed one heartbeat interval after the unanswered heartbeat was sent
    assert.ok(timeoutLog.at - t0 >= 1800 && timeoutLog.at - t0 < 2900, `heartbeat timeout after ${timeoutLog.at - t0} ms`)
    assert.equal(msgs(c, m => m.topic === "phoenix").length, 0, "no heartbeat reply while room:slow joins")
    const [close] = await c.rec.waitCount("ws_close", 1, "websocket closed", 6000)
    assert.deepEqual([close.code, close.reason], [1000, ""], "the server answers the client's close (1000, \"heartbeat timeout\") with code 1000 and an empty reason")
    const log = await serverLog(server)
    assert.ok(log.some(e => e.frame && /"phoenix","heartbeat"/.test(e.frame)), `server received the heartbeat: ${JSON.stringify(log)}`)
  })

  it("join room:lobby with echo, room:other, room:other2 with echo", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    assert.deepEqual(await outcome(channel(c, "room:lobby", {echo: "hi"}).join()), ["ok", {echo: "hi", joined: "room:lobby"}])
    assert.deepEqual(await outcome(channel(c, "room:other").join()), ["ok", {}])
    assert.deepEqual(await outcome(channel(c, "room:other2", {echo: 42}).join()), ["ok", {echo: 42}])
    assert.deepEqual(await outcome(channel(c, "room:withecho", {echo: {x: [1, "two"]}}).join()), ["ok", {echo: {x: [1, "two"]}}])
    // reply frames carry the join's join_ref and ref
    for(const topic of ["room:lobby", "room:other", "room:other2"]){
      const [r] = msgs(c, m => m.topic === topic && m.event === "phx_reply")
      assert.ok(r.join_ref && r.join_ref === r.ref, `join reply refs ${JSON.stringify(r)}`)
    }
  })

  it("join room:lobby without payload -> {joined: room:lobby}", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    assert.deepEqual(await outcome(channel(c, "room:lobby").join()), ["ok", {joined: "room:lobby"}])
  })

  it("join room:private -> error unauthorized", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const ch = channel(c, "room:private")
    assert.deepEqual(await outcome(ch.join()), ["error", {reason: "unauthorized"}])
    const [r] = msgs(c, m => m.topic === "room:private" && m.event === "phx_reply")
    assert.equal(r.join_ref, ch.joinRef())
    assert.equal(r.ref, ch.joinRef())
  })

  it("join room:crash -> error join crashed, the socket survives", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    assert.deepEqual(await outcome(channel(c, "room:crash").join()), ["error", {reason: "join crashed"}])
    const lobby = channel(c, "room:lobby")
    assert.deepEqual(await outcome(lobby.join()), ["ok", {joined: "room:lobby"}])
    assert.deepEqual(await outcome(lobby.push("echo", {alive: true})), ["ok", {alive: true}])
    assert.equal(c.rec.of("close").length, 0)
    assert.equal(c.rec.of("open").length, 1)
  })

  it("join room:slow: ok after ~3 s, other frames of the socket wait; with a 1 s client timeout -> timeout", {timeout: TEST_TIMEOUT}, async () => {
    const a = await connected(server, {token: "alice", timeout: 10000})
    const b = await connected(server, {token: "bob"})
    const t0 = performance.now()
    const slow = outcome(channel(a, "room:slow").join())
    const lobby = outcome(channel(a, "room:lobby").join())
    const timedOut = outcome(channel(b, "room:slow").join(1000))
    assert.deepEqual(await timedOut, ["timeout"])
    const tTimeout = performance.now() - t0
    assert.ok(tTimeout >= 950 && tTimeout < 2000, `join timeout after ${tTimeout} ms`)
    assert.deepEqual(await slow, ["ok", {}])
    const tSlow = performance.now() - t0
    assert.ok(tSlow >= 2900 && tSlow < 5000, `room:slow joined after ${tSlow} ms`)
    assert.deepEqual(await lobby, ["ok", {joined: "room:lobby"}])
    const order = msgs(a, m => m.event === "phx_reply").map(m => m.topic)
    assert.deepEqual(order, ["room:slow", "room:lobby"], "the second join is answered after the slow one")
  })

  it("join a topic with no channel route -> unmatched topic, join_ref null", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const ch = channel(c, "nochannel:1")
    assert.deepEqual(await outcome(ch.join()), ["error", {reason: "unmatched topic"}])
    const [r] = msgs(c, m => m.topic === "nochannel:1")
    assert.equal(r.join_ref, null)
    assert.equal(r.ref, ch.joinRef())
  })

  describe("room:* events", () => {
    let c, lobby
    before(async () => {
      c = await connected(server, {token: "alice"})
      lobby = channel(c, "room:lobby")
      assert.deepEqual(await outcome(lobby.join()), ["ok", {joined: "room:lobby"}])
      sockets.delete(c.socket) // kept for the whole group
    })
    after(async () => { await disconnect(c.socket) })

    it("push echo -> ok with the payload (unicode, nested, non-map)", {timeout: TEST_TIMEOUT}, async () => {
      assert.deepEqual(await outcome(lobby.push("echo", {a: 1, b: [1, 2], c: "ü"})), ["ok", {a: 1, b: [1, 2], c: "ü"}])
      const payload = {hello: "world", n: 1.5, u: "ü€", nested: {a: [null, true]}}
      const push = lobby.push("echo", payload)
      assert.deepEqual(await outcome(push), ["ok", payload])
      const [r] = msgs(c, m => m.ref === push.ref)
      assert.equal(r.join_ref, lobby.joinRef())
      assert.deepEqual(await outcome(lobby.push("echo", "not-a-map")), ["ok", "not-a-map"])
    })

    it("push fail -> error nope", {timeout: TEST_TIMEOUT}, async () => {
      assert.deepEqual(await outcome(lobby.push("fail", {})), ["error", {reason: "nope"}])
    })

    it("push noreply -> no reply (client timeout)", {timeout: TEST_TIMEOUT}, async () => {
      const push = lobby.push("noreply", {}, 300)
      assert.deepEqual(await outcome(push), ["timeout"])
      assert.equal(msgs(c, m => m.ref === push.ref).length, 0)
    })

    it("push push_me -> 'pushed' event with the payload before the ok reply", {timeout: TEST_TIMEOUT}, async () => {
      const pushed = []
      const ref = lobby.on("pushed", p => pushed.push(p))
      const push = lobby.push("push_me", {x: 1})
      assert.deepEqual(await outcome(push), ["ok", {}])
      lobby.off("pushed", ref)
      assert.deepEqual(pushed, [{x: 1}])
      const frames = msgs(c, m => m.event === "pushed" || m.ref === push.ref)
      assert.deepEqual(frames.map(m => [m.join_ref, m.ref, m.event]), [[lobby.joinRef(), null, "pushed"], [lobby.joinRef(), push.ref, "phx_reply"]])
    })

    it("push flood n=3, n=1000 (ordered, before the reply), n=0", {timeout: TEST_TIMEOUT}, async () => {
      for(const n of [3, 1000, 0]){
        const got = []
        const ref = lobby.on("flood_msg", p => got.push(p.i))
        assert.deepEqual(await outcome(lobby.push("flood", {n})), ["ok", {sent: n}])
        lobby.off("flood_msg", ref)
        assert.deepEqual(got, Array.from({length: n}, (_, i) => i + 1), `flood n=${n} in order before the reply`)
      }
    })

    it("push new_msg -> broadcast to every joined socket (sender included) before the reply", {timeout: TEST_TIMEOUT}, async () => {
      const other = await connected(server, {token: "bob"})
      const ch2 = channel(other, "room:lobby")
      assert.deepEqual(await outcome(ch2.join()), ["ok", {joined: "room:lobby"}])
      const got1 = [], got2 = []
      const ref = lobby.on("new_msg", p => got1.push(p))
      ch2.on("new_msg", p => got2.push(p))
      const push = lobby.push("new_msg", {body: "hello all"})
      assert.deepEqual(await outcome(push), ["ok", {}])
      assert.deepEqual(got1, [{body: "hello all"}], "sender got the broadcast before its reply")
      await other.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "new_msg"), "broadcast at the other socket")
      lobby.off("new_msg", ref)
      assert.deepEqual(got2, [{body: "hello all"}])
      const [b] = msgs(c, m => m.event === "new_msg")
      assert.equal(b.join_ref, null)
      assert.equal(b.ref, null)
    })

    it("binary push echo / any event -> binary reply; empty binary payload", {timeout: TEST_TIMEOUT}, async () => {
      const data = bin(0, 1, 2, 0xff, 0xfe, 0x0a)
      for(const ev of ["echo", "anything"]){
        const [status, resp] = await outcome(lobby.push(ev, data))
        assert.equal(status, "ok")
        assert.ok(resp instanceof ArrayBuffer, `binary reply for ${ev}: ${JSON.stringify(resp, replacer)}`)
        assert.equal(hex(resp), "000102fffe0a")
      }
      const [status, resp] = await outcome(lobby.push("echo", new ArrayBuffer(0)))
      assert.equal(status, "ok")
      assert.ok(resp instanceof ArrayBuffer)
      assert.equal(resp.byteLength, 0)
    })

    it("binary push_me -> binary 'pushed' event then text reply", {timeout: TEST_TIMEOUT}, async () => {
      const pushed = []
      const ref = lobby.on("pushed", p => pushed.push(p))
      assert.deepEqual(await outcome(lobby.push("push_me", bin(0, 1, 2, 0xff, 0xfe, 0x0a))), ["ok", {}])
      lobby.off("pushed", ref)
      assert.equal(pushed.length, 1)
      assert.ok(pushed[0] instanceof ArrayBuffer, "binary push")
      assert.equal(hex(pushed[0]), "000102fffe0a")
      const [m] = msgs(c, m => m.event === "pushed" && m.payload instanceof ArrayBuffer)
      assert.equal(m.join_ref, lobby.joinRef())
    })

    it("binary new_msg -> binary broadcast to both sockets", {timeout: TEST_TIMEOUT}, async () => {
      const other = await connected(server, {token: "bob"})
      const ch2 = channel(other, "room:lobby")
      assert.equal((await outcome(ch2.join()))[0], "ok")
      const got1 = []
      const ref = lobby.on("new_msg", p => got1.push(p))
      assert.deepEqual(await outcome(lobby.push("new_msg", bin(0xbe, 0xef))), ["ok", {}])
      lobby.off("new_msg", ref)
      const m2 = await other.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "new_msg"), "binary broadcast at the other socket")
      assert.equal(got1.length, 1)
      for(const p of [got1[0], m2.payload]){
        assert.ok(p instanceof ArrayBuffer)
        assert.equal(hex(p), "beef")
      }
      assert.equal(m2.join_ref, null)
    })

    it("binary push to a topic never joined -> text unmatched topic reply", {timeout: TEST_TIMEOUT}, async () => {
      const r = await rawPush(c, "room:never", "echo", bin(1), "1")
      assert.equal(r.join_ref, null)
      assert.deepEqual(r.payload, {response: {reason: "unmatched topic"}, status: "error"})
    })

    it("push to a topic never joined -> unmatched topic, join_ref null", {timeout: TEST_TIMEOUT}, async () => {
      const r = await rawPush(c, "room:never", "echo", {a: 1}, "7")
      assert.deepEqual({join_ref: r.join_ref, topic: r.topic, event: r.event, payload: r.payload},
        {join_ref: null, topic: "room:never", event: "phx_reply", payload: {response: {reason: "unmatched topic"}, status: "error"}})
    })
  })

  it("echo:bench: join ok {}, json echo, binary echo, any event echoed", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const ch = channel(c, "echo:bench")
    assert.deepEqual(await outcome(ch.join()), ["ok", {}])
    assert.deepEqual(await outcome(ch.push("echo", {n: 1})), ["ok", {n: 1}])
    assert.deepEqual(await outcome(ch.push("whatever", {list: [1, "x", null]})), ["ok", {list: [1, "x", null]}])
    const [status, resp] = await outcome(ch.push("anything", bin(0, 0x7b, 0x7d)))
    assert.equal(status, "ok")
    assert.ok(resp instanceof ArrayBuffer)
    assert.equal(hex(resp), "007b7d")
  })

  it("push crash -> no reply (timeout) + channel onError (phx_error ref = join_ref), then rejoin works", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice", rejoinAfterMs: () => 50})
    const ch = channel(c, "room:crashy")
    assert.deepEqual(await outcome(ch.join()), ["ok", {}])
    const joinRef = ch.joinRef()
    const push = ch.push("crash", {}, 300)
    const err = await c.rec.waitFor(items => items.find(i => i.kind === "chan_error"), "channel onError")
    assert.deepEqual(err.payload, {})
    assert.equal(ch.state, "errored")
    assert.deepEqual(await outcome(push), ["timeout"])
    const [f] = msgs(c, m => m.event === "phx_error")
    assert.deepEqual([f.join_ref, f.ref, f.topic, f.payload], [joinRef, joinRef, "room:crashy", {}])
    assert.equal(msgs(c, m => m.ref === push.ref).length, 0, "no reply for the crashing push")
    await c.rec.waitFor(() => joinsOf(c, "room:crashy").length >= 2, "rejoin after phx_error")
    assert.notEqual(ch.joinRef(), joinRef)
    assert.deepEqual(await outcome(ch.push("echo", {again: true})), ["ok", {again: true}])
  })

  it("push stop -> no reply (timeout) + channel onClose (phx_close)", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const ch = channel(c, "room:stopper")
    assert.deepEqual(await outcome(ch.join()), ["ok", {}])
    const joinRef = ch.joinRef()
    const push = ch.push("stop", {}, 300)
    await c.rec.waitFor(items => items.find(i => i.kind === "chan_close"), "channel onClose")
    assert.deepEqual(await outcome(push), ["timeout"])
    assert.equal(ch.state, "closed")
    const [f] = msgs(c, m => m.event === "phx_close")
    assert.deepEqual([f.join_ref, f.ref, f.payload], [joinRef, joinRef, {}])
    const r = await rawPush(c, "room:stopper", "echo", {}, joinRef)
    assert.deepEqual([r.join_ref, r.payload], [null, {response: {reason: "unmatched topic"}, status: "error"}])
  })

  it("push stop_reply -> reply ok {bye: true} then onClose", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const ch = channel(c, "room:stopper2")
    assert.deepEqual(await outcome(ch.join()), ["ok", {}])
    assert.deepEqual(await outcome(ch.push("stop_reply", {})), ["ok", {bye: true}])
    await c.rec.waitFor(items => items.find(i => i.kind === "chan_close"), "channel onClose")
    await c.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "phx_close"), "phx_close frame")
    assert.equal(ch.state, "closed")
    const frames = msgs(c, m => m.topic === "room:stopper2").map(m => m.event)
    assert.deepEqual(frames, ["phx_reply", "phx_reply", "phx_close"])
  })

  it("leave -> ok, phx_close, topic unjoined", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const ch = channel(c, "room:leaver")
    assert.deepEqual(await outcome(ch.join()), ["ok", {}])
    const joinRef = ch.joinRef()
    const leave = ch.leave()
    assert.deepEqual(await outcome(leave), ["ok", {}])
    assert.equal(ch.state, "closed")
    const close = await c.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "phx_close"), "phx_close after leave")
    assert.deepEqual([close.join_ref, close.ref, close.topic], [joinRef, joinRef, "room:leaver"])
    const [reply] = msgs(c, m => m.ref === leave.ref)
    assert.equal(reply.join_ref, joinRef)
    assert.ok(reply.at <= close.at, "leave reply before phx_close")
    const r = await rawPush(c, "room:leaver", "echo", {}, joinRef)
    assert.deepEqual(r.payload, {response: {reason: "unmatched topic"}, status: "error"})
  })

  it("second channel() for the same topic: the client leaves the first, the second joins", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "alice"})
    const d1 = channel(c, "room:dup")
    assert.deepEqual(await outcome(d1.join()), ["ok", {}])
    const d2 = channel(c, "room:dup")
    assert.deepEqual(await outcome(d2.join()), ["ok", {}])
    await c.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "phx_close" && i.join_ref === d1.joinRef()), "phx_close for the first join")
    await c.rec.waitFor(() => d1.state === "closed", "first channel closed")
    assert.equal(d2.state, "joined")
    const push = d2.push("echo", {x: 2})
    assert.deepEqual(await outcome(push), ["ok", {x: 2}])
    assert.equal(msgs(c, m => m.ref === push.ref)[0].join_ref, d2.joinRef())
  })

  it("disconnect_me -> reply ok then websocket close 1000; the client reconnects and rejoins", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "victim"})
    const ch = channel(c, "room:lobby")
    assert.equal((await outcome(ch.join()))[0], "ok")
    assert.deepEqual(await outcome(ch.push("disconnect_me", {})), ["ok", {disconnecting: true}])
    const [close] = await c.rec.waitCount("close", 1)
    assert.deepEqual(close, {...close, code: 1000, reason: "", wasClean: true})
    assert.equal(msgs(c, m => m.event === "phx_close" || m.event === "phx_error").length, 0, "nothing sent for the channels")
    await c.rec.waitCount("open", 2, "reconnect")
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 2, "rejoin")
  })

  it("connect token=bad -> error (HTTP 403)", {timeout: TEST_TIMEOUT}, async () => {
    const c = client(server, {token: "bad", reconnectAfterMs: () => 10000})
    c.socket.connect()
    const [err] = await c.rec.waitCount("error", 1)
    assert.match(err.message, /Unexpected server response: 403/)
    assert.equal(c.rec.of("open").length, 0)
  })

  it("unknown vsn -> error (HTTP 403)", {timeout: TEST_TIMEOUT}, async () => {
    const c = client(server, {vsn: "3.0.0", reconnectAfterMs: () => 10000})
    c.socket.connect()
    const [err] = await c.rec.waitCount("error", 1)
    assert.match(err.message, /Unexpected server response: 403/)
  })

  it("101st channel on one socket -> too many channels joined", {timeout: TEST_TIMEOUT}, async () => {
    const c = await connected(server, {token: "many", timeout: 5000})
    const results = await Promise.all(Array.from({length: 100}, (_, i) => outcome(channel(c, `room:m${i + 1}`).join())))
    assert.deepEqual(results.filter(r => r[0] !== "ok"), [])
    assert.deepEqual(await outcome(channel(c, "room:m101").join()), ["error", {reason: "too many channels joined"}])
  })

  it("no vsn -> V1 JSON objects (raw ws)", {timeout: TEST_TIMEOUT}, async () => {
    const ws = new WebSocket(`${server.url}?token=v1`)
    const rec = new Recorder("raw v1")
    ws.on("message", d => rec.push({kind: "msg", data: JSON.parse(d.toString())}))
    ws.on("close", code => rec.push({kind: "close", code}))
    await new Promise((res, rej) => { ws.once("open", res); ws.once("error", rej) })
    try {
      ws.send(JSON.stringify({topic: "phoenix", event: "heartbeat", payload: {}, ref: "1"}))
      ws.send(JSON.stringify({topic: "room:lobby", event: "phx_join", payload: {}, ref: "2"}))
      const [hb, join] = (await rec.waitCount("msg", 2)).map(m => m.data)
      assert.deepEqual(hb, {event: "phx_reply", payload: {response: {}, status: "ok"}, ref: "1", topic: "phoenix"})
      assert.deepEqual(join, {event: "phx_reply", payload: {response: {joined: "room:lobby"}, status: "ok"}, ref: "2", topic: "room:lobby"})
    } finally {
      ws.close(1000)
    }
    const [close] = await rec.waitCount("close", 1)
    assert.equal(close.code, 1000)
  })

  it("plain HTTP GET without upgrade headers -> 400 with a text body", {timeout: TEST_TIMEOUT}, async () => {
    const res = await fetch(`${server.base}/socket/websocket?vsn=2.0.0`)
    const body = await res.text()
    assert.equal(res.status, 400)
    assert.ok(body.length > 0)
  })
})

// ---------------------------------------------------------------------------------------------------
// presence:* through phoenix.js's Presence class (phoenix-1.7-presence-transcripts.md)

describe("presence (phoenix.js Presence)", () => {
  let server
  before(async () => { server = await startServer() })
  after(async () => { await server.stop() })

  async function presenceClient(token, topic, device, opts = {}){
    const c = await connected(server, {token, ...opts})
    const ch = channel(c, topic, device ? {device} : {})
    const presence = new Presence(ch)
    presence.onJoin((key, cur, nw) => c.rec.push({kind: "p_join", key, cur: clone(cur), nw: clone(nw)}))
    presence.onLeave((key, cur, left) => c.rec.push({kind: "p_leave", key, cur: clone(cur), left: clone(left)}))
    presence.onSync(() => c.rec.push({kind: "p_sync", list: devices({presence})}))
    const res = await outcome(ch.join())
    assert.deepEqual(res, ["ok", {}], `${token} joins ${topic}`)
    return {...c, ch, presence, token}
  }

  // [[key, [device, ...]], ...] sorted by key; metas in client order
  function devices(p){
    return p.presence.list((key, pres) => [key, pres.metas.map(m => m.device)]).sort((a, b) => a[0] < b[0] ? -1 : 1)
  }

  const metasOf = (p, key) => {
    const found = p.presence.list((k, pres) => k === key ? pres.metas : null).filter(Boolean)
    return found.length ? found[0] : []
  }

  function synced(p, expected, label){
    const want = JSON.stringify(expected)
    return p.rec.waitFor(() => JSON.stringify(devices(p)) === want, `${p.token}: presence list ${want} (${label})`)
  }

  const REF = /^[A-Za-z0-9_-]{16}$/

  it("track, state, diffs, update, abrupt disconnect, leave, untrack (steps a-g)", {timeout: TEST_TIMEOUT}, async () => {
    const topic = "presence:room1"
    // (a) alice joins: presence_state (push: join_ref, ref null) and own join diff (broadcast: null, null)
    const A = await presenceClient("alice", topic)
    await synced(A, [["alice", ["default"]]], "a")
    const state = await A.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "presence_state"), "presence_state")
    assert.equal(state.join_ref, A.ch.joinRef())
    assert.equal(state.ref, null)
    const ownDiff = await A.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "presence_diff"), "own join diff")
    assert.deepEqual([ownDiff.join_ref, ownDiff.ref], [null, null])
    assert.deepEqual(Object.keys(ownDiff.payload).sort(), ["joins", "leaves"])
    assert.deepEqual(ownDiff.payload.leaves, {})
    const [aliceMeta] = metasOf(A, "alice")
    assert.deepEqual(Object.keys(aliceMeta).sort(), ["device", "online_at", "phx_ref"])
    assert.ok(Number.isInteger(aliceMeta.online_at), `online_at is an integer: ${aliceMeta.online_at}`)
    assert.ok(Math.abs(aliceMeta.online_at - Date.now() / 1000) < 120, "online_at is in seconds")
    assert.match(aliceMeta.phx_ref, REF)
    assert.deepEqual(state.payload, {alice: {metas: [aliceMeta]}})
    assert.deepEqual(ownDiff.payload.joins, {alice: {metas: [aliceMeta]}})

    // (b) bob joins with device laptop
    const B = await presenceClient("bob", topic, "laptop", {reconnectAfterMs: () => 60000})
    await synced(B, [["alice", ["default"]], ["bob", ["laptop"]]], "b")
    await synced(A, [["alice", ["default"]], ["bob", ["laptop"]]], "b")
    const bobJoin = A.rec.of("p_join").find(j => j.key === "bob")
    assert.equal(bobJoin.cur, undefined)
    const [bobMeta] = metasOf(A, "bob")
    assert.equal(bobMeta.device, "laptop")
    assert.match(bobMeta.phx_ref, REF)
    assert.notEqual(bobMeta.phx_ref, aliceMeta.phx_ref)

    // (c) alice's second socket, device phone: the diff only lists the new meta
    const A2 = await presenceClient("alice", topic, "phone")
    const c3 = [["alice", ["default", "phone"]], ["bob", ["laptop"]]]
    await synced(A2, c3, "c")
    await synced(A, c3, "c")
    await synced(B, c3, "c")
    const phoneDiff = A.rec.of("msg").find(m => m.event === "presence_diff" && m.payload.joins.alice && m.payload.joins.alice.metas[0].device === "phone")
    assert.equal(phoneDiff.payload.joins.alice.metas.length, 1)
    const a2State = A2.rec.of("msg").find(m => m.event === "presence_state")
    assert.deepEqual(a2State.payload.alice.metas.map(m => m.device), ["default", "phone"])

    // (d) bob updates: one diff with join (new ref, phx_ref_prev) and leave (old meta)
    assert.deepEqual(await outcome(B.ch.push("update", {device: "tablet"})), ["ok", {}])
    const d4 = [["alice", ["default", "phone"]], ["bob", ["tablet"]]]
    await synced(A, d4, "d")
    await synced(B, d4, "d")
    await synced(A2, d4, "d")
    const upd = A.rec.of("msg").find(m => m.event === "presence_diff" && m.payload.leaves.bob)
    const [newBob] = upd.payload.joins.bob.metas
    assert.deepEqual(upd.payload.leaves.bob.metas, [bobMeta])
    assert.equal(newBob.device, "tablet")
    assert.equal(newBob.online_at, bobMeta.online_at)
    assert.equal(newBob.phx_ref_prev, bobMeta.phx_ref)
    assert.match(newBob.phx_ref, REF)
    assert.notEqual(newBob.phx_ref, bobMeta.phx_ref)
    const aBob = A.rec.items.filter(i => (i.kind === "p_join" || i.kind === "p_leave") && i.key === "bob").map(i => i.kind)
    assert.deepEqual(aBob, ["p_join", "p_join", "p_leave"], "update = onJoin then onLeave")

    // (e) bob's TCP connection is destroyed: others get a leave diff with the current meta
    B.socket.conn.terminate()
    const e5 = [["alice", ["default", "phone"]]]
    await synced(A, e5, "e")
    await synced(A2, e5, "e")
    const bobLeave = A.rec.of("p_leave").filter(l => l.key === "bob").pop()
    assert.deepEqual(bobLeave.left.metas, [newBob])
    assert.deepEqual(bobLeave.cur.metas, [])

    // (f) A2 leaves: A sees only the phone meta leave
    assert.deepEqual(await outcome(A2.ch.leave()), ["ok", {}])
    await synced(A, [["alice", ["default"]]], "f")
    const phoneLeave = A.rec.of("p_leave").filter(l => l.key === "alice").pop()
    assert.deepEqual(phoneLeave.left.metas.map(m => m.device), ["phone"])

    // (g) A untracks (stays joined), update then fails; A still gets carol's join diff
    assert.deepEqual(await outcome(A.ch.push("untrack", {})), ["ok", {}])
    await synced(A, [], "g untrack")
    assert.equal(A.ch.state, "joined")
    assert.deepEqual(await outcome(A.ch.push("update", {device: "x"})), ["error", {reason: ":nopresence"}])
    const C = await presenceClient("carol", topic)
    await synced(C, [["carol", ["default"]]], "g")
    await synced(A, [["carol", ["default"]]], "g")
  })

  it("meta order after updating the first of two metas (step h)", {timeout: TEST_TIMEOUT}, async () => {
    const topic = "presence:room2"
    const D1 = await presenceClient("dave", topic, "first")
    await synced(D1, [["dave", ["first"]]], "h")
    const D2 = await presenceClient("dave", topic, "second")
    await synced(D2, [["dave", ["first", "second"]]], "h")
    await synced(D1, [["dave", ["first", "second"]]], "h")
    assert.deepEqual(await outcome(D1.ch.push("update", {device: "first-updated"})), ["ok", {}])
    // the client applies join-then-leave: the updated meta moves to the end
    await synced(D1, [["dave", ["second", "first-updated"]]], "h")
    await synced(D2, [["dave", ["second", "first-updated"]]], "h")
    const E = await presenceClient("erin", topic)
    // the server lists metas by tracking order: the updated meta stays first
    await synced(E, [["dave", ["first-updated", "second"]], ["erin", ["default"]]], "h")
    await synced(D1, [["dave", ["second", "first-updated"]], ["erin", ["default"]]], "h")
    await synced(D2, [["dave", ["second", "first-updated"]], ["erin", ["default"]]], "h")
    const eState = E.rec.of("msg").find(m => m.event === "presence_state")
    const updated = metasOf(D1, "dave")[1]
    assert.deepEqual(eState.payload.dave.metas[0], updated)
    assert.equal(updated.phx_ref_prev, D1.rec.of("msg").find(m => m.event === "presence_state").payload.dave.metas[0].phx_ref)
  })

  it("a socket that disconnects normally leaves the presence of others", {timeout: TEST_TIMEOUT}, async () => {
    const topic = "presence:room3"
    const A = await presenceClient("ann", topic)
    const B = await presenceClient("ben", topic, "desk")
    await synced(A, [["ann", ["default"]], ["ben", ["desk"]]], "before")
    await disconnect(B.socket)
    await synced(A, [["ann", ["default"]]], "after ben's disconnect")
  })
})

// ---------------------------------------------------------------------------------------------------
// fault controls (docs/testserver.md): one fresh server per test

describe("fault controls", () => {
  let server
  afterEach(async () => {
    await Promise.all([...sockets].map(disconnect))
    if(server){ await server.stop(); server = null }
  })

  async function joinedClient(opts = {}, topic = "room:lobby"){
    const c = await connected(server, {token: "f", rejoinAfterMs: () => 50, reconnectAfterMs: () => 50, ...opts})
    const ch = channel(c, topic)
    assert.equal((await outcome(ch.join()))[0], "ok")
    return {...c, ch}
  }

  it("drop -> close without close frame (1006), the client reconnects and the channel rejoins", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = await joinedClient()
    okBody(await control(server, "drop"))
    const [close] = await c.rec.waitCount("close", 1)
    assert.equal(close.code, 1006)
    await c.rec.waitCount("open", 2, "reconnect")
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 2, "rejoin")
    assert.deepEqual(await outcome(c.ch.push("echo", {after: "drop"})), ["ok", {after: "drop"}])
    const s = await stats(server)
    assert.equal(s.accepted, 2)
    assert.equal(s.joins["room:lobby"], 2)
    await eventually(async () => {
      const s2 = await stats(server)
      assert.equal(s2.connections, 1)
      assert.equal(s2.joined["room:lobby"], 1)
    })
  })

  it("close?code=N -> close code N, the client reconnects and rejoins", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = await joinedClient()
    let n = 1
    for(const code of [4001, 1012, 1000]){
      okBody(await control(server, "close", {code}))
      const closes = await c.rec.waitCount("close", n, `close ${code}`)
      assert.equal(closes[n - 1].code, code)
      assert.equal(closes[n - 1].reason, "")
      await c.rec.waitCount("open", n + 1, "reconnect")
      await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= n + 1, "rejoin")
      n++
    }
    assert.deepEqual(await outcome(c.ch.push("echo", {n})), ["ok", {n}])
    await control(server, "close", {code: "nope"}, {expectStatus: 400})
  })

  it("blackhole with a short heartbeat -> the client closes and reconnects itself; other frames still answered", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = await joinedClient({heartbeatIntervalMs: 200})
    await c.rec.waitFor(items => items.find(i => i.kind === "msg" && i.topic === "phoenix"), "a heartbeat reply before the blackhole")
    okBody(await control(server, "blackhole", {on: 1}))
    // everything but heartbeats is still answered
    assert.deepEqual(await outcome(c.ch.push("echo", {bh: 1})), ["ok", {bh: 1}])
    const hbBefore = msgs(c, m => m.topic === "phoenix").length
    await c.rec.waitFor(items => items.find(i => i.kind === "log" && /heartbeat timeout/.test(i.msg)), "heartbeat timeout", 3000)
    const [close] = await c.rec.waitCount("close", 1)
    assert.equal(close.code, 1000)
    await c.rec.waitCount("open", 2, "reconnect after heartbeat timeout")
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 2, "rejoin")
    // at most one reply could have been in flight when the blackhole started
    assert.ok(msgs(c, m => m.topic === "phoenix").length <= hbBefore + 1, "no heartbeat replies during the blackhole")
    okBody(await control(server, "blackhole", {on: 0}))
    const hbNow = msgs(c, m => m.topic === "phoenix").length
    await c.rec.waitFor(() => msgs(c, m => m.topic === "phoenix").length > hbNow, "heartbeat replies resume")
    const log = await serverLog(server)
    assert.ok(log.filter(e => e.frame && /"phoenix","heartbeat"/.test(e.frame)).length >= 2, "the server received the heartbeats")
  })

  it("delay?ms=N -> a push round trip takes at least N ms, order kept; ms=0 turns it off", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = await joinedClient({timeout: 6000})
    okBody(await control(server, "delay", {ms: 400}))
    let t0 = performance.now()
    assert.deepEqual(await outcome(c.ch.push("echo", {d: 1})), ["ok", {d: 1}])
    const rtt = performance.now() - t0
    assert.ok(rtt >= 395, `round trip with delay 400 took ${rtt} ms`)
    const got = []
    c.ch.on("flood_msg", p => got.push(p.i))
    assert.deepEqual(await outcome(c.ch.push("flood", {n: 5})), ["ok", {sent: 5}])
    assert.deepEqual(got, [1, 2, 3, 4, 5])
    okBody(await control(server, "delay", {ms: 0}))
    t0 = performance.now()
    assert.deepEqual(await outcome(c.ch.push("echo", {d: 2})), ["ok", {d: 2}])
    const rtt2 = performance.now() - t0
    assert.ok(rtt2 < 300, `round trip without delay took ${rtt2} ms`)
  })

  it("refuse?status=503 -> connection errors until reset, then the client connects and joins", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    okBody(await control(server, "refuse", {status: 503}))
    const c = client(server, {token: "f", reconnectAfterMs: () => 50, rejoinAfterMs: () => 50})
    const ch = channel(c, "room:lobby")
    ch.join()
    c.socket.connect()
    const errs = await c.rec.waitCount("error", 2, "two refused attempts")
    for(const e of errs){ assert.match(e.message, /Unexpected server response: 503/) }
    assert.equal(c.rec.of("open").length, 0)
    okBody(await control(server, "reset"))
    await c.rec.waitCount("open", 1, "connect after reset")
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 1, "join after reset")
    const s = await stats(server)
    assert.equal(s.accepted, 1)
  })

  it("refuse?status=503&ms=M -> refused for M ms only", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    okBody(await control(server, "refuse", {status: 503, ms: 300}))
    const t0 = performance.now()
    const c = client(server, {token: "f", reconnectAfterMs: () => 50})
    c.socket.connect()
    const [err] = await c.rec.waitCount("error", 1)
    assert.match(err.message, /503/)
    await c.rec.waitCount("open", 1, "connects once the refusal expired")
    const elapsed = performance.now() - t0
    assert.ok(elapsed >= 250, `opened after ${elapsed} ms`)
  })

  it("restart?down_ms=N -> errors while down, reconnect to the same port, rejoin", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = await joinedClient({reconnectAfterMs: () => 50})
    assert.equal((await stats(server)).joins["room:lobby"], 1)
    const t0 = performance.now()
    okBody(await control(server, "restart", {down_ms: 400}))
    const [close] = await c.rec.waitCount("close", 1)
    assert.equal(close.code, 1006, "connections are dropped (no close frame)")
    await c.rec.waitCount("error", 1, "a refused reconnect while the server is down")
    await c.rec.waitCount("open", 2, "reconnect after the restart")
    const elapsed = performance.now() - t0
    assert.ok(elapsed >= 350, `reconnected after ${elapsed} ms with down_ms=400`)
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 2, "rejoin after the restart")
    assert.deepEqual(await outcome(c.ch.push("echo", {restarted: true})), ["ok", {restarted: true}])
    await eventually(async () => {
      const s = await stats(server)
      assert.equal(s.connections, 1)
      assert.equal(s.joined["room:lobby"], 1)
    })
  })

  it("silence -> pushes get no reply (frames are read), after silence off they are answered again", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = await joinedClient()
    await control(server, "log", {clear: 1})
    okBody(await control(server, "silence", {on: 1}))
    const push = c.ch.push("echo", {s: 1}, 300)
    assert.deepEqual(await outcome(push), ["timeout"])
    const log = await serverLog(server)
    assert.ok(log.some(e => e.frame && e.frame.includes('"echo",{"s":1}')), `silenced frames are still read: ${JSON.stringify(log)}`)
    okBody(await control(server, "silence", {on: 0}))
    assert.deepEqual(await outcome(c.ch.push("echo", {s: 2})), ["ok", {s: 2}])
  })

  it("silence also holds back new connections' replies; reset clears it", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    okBody(await control(server, "silence", {on: 1}))
    const c = client(server, {token: "s", rejoinAfterMs: () => 50})
    const ch = channel(c, "room:lobby")
    c.socket.connect()
    const first = outcome(ch.join(300))
    assert.deepEqual(await first, ["timeout"])
    okBody(await control(server, "reset"))
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 1, "join after reset")
  })

  it("stop_reading&conn=N -> that socket's pushes wait unread while broadcasts still reach it; on=0 answers them in order", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const a = await joinedClient({timeout: 8000})
    const b = await joinedClient({token: "g"})
    await control(server, "log", {clear: 1})
    assert.deepEqual(await outcome(a.ch.push("echo", {who: "a"})), ["ok", {who: "a"}])
    const [{conn}] = await serverLog(server)
    okBody(await control(server, "stop_reading", {on: 1, conn}))
    const p1 = outcome(a.ch.push("echo", {n: 1}))
    const p2 = outcome(a.ch.push("echo", {n: 2}))
    // the server still writes to the unread socket
    assert.deepEqual(await outcome(b.ch.push("new_msg", {body: "unread"})), ["ok", {}])
    await a.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "new_msg" && i.payload.body === "unread"), "broadcast to the unread socket")
    const log = await serverLog(server)
    assert.ok(!log.some(e => e.conn === conn && e.frame && e.frame.includes('"n":')), `frames of the unread socket were read: ${JSON.stringify(log)}`)
    okBody(await control(server, "stop_reading", {on: 0, conn}))
    assert.deepEqual(await p1, ["ok", {n: 1}])
    assert.deepEqual(await p2, ["ok", {n: 2}])
    const replies = msgs(a, m => m.event === "phx_reply" && m.payload.response && "n" in m.payload.response).map(m => m.payload.response.n)
    assert.deepEqual(replies, [1, 2])
    await control(server, "stop_reading", {on: "x"}, {expectStatus: 400})
  })

  it("stop_reading?on=1 -> no socket is read, new ones included; reset clears it", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const a = await joinedClient()
    okBody(await control(server, "stop_reading", {on: 1}))
    assert.deepEqual(await outcome(a.ch.push("echo", {unread: true}, 300)), ["timeout"])
    const c = client(server, {token: "n", rejoinAfterMs: () => 50})
    const ch = channel(c, "room:lobby")
    c.socket.connect()
    await c.rec.waitCount("open", 1, "a new socket is still upgraded")
    assert.deepEqual(await outcome(ch.join(300)), ["timeout"])
    okBody(await control(server, "reset"))
    assert.deepEqual(await outcome(a.ch.push("echo", {read: true})), ["ok", {read: true}])
    await c.rec.waitFor(() => joinsOf(c, "room:lobby").length >= 1, "the new socket joins after reset")
  })

  it("stats and log reflect the scenario; unknown control -> 404", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    let s = await stats(server)
    assert.deepEqual(s, {...s, connections: 0, accepted: 0})
    for(const k of ["joins", "leaves", "joined"]){ assert.equal(typeof s[k], "object", `stats.${k}`) }

    const c = await connected(server, {token: "stats"})
    const ch = channel(c, "room:lobby")
    assert.equal((await outcome(ch.join()))[0], "ok")
    s = await stats(server)
    assert.equal(s.connections, 1)
    assert.equal(s.accepted, 1)
    assert.equal(s.joins["room:lobby"], 1)
    assert.equal(s.joined["room:lobby"], 1)
    assert.equal(s.leaves["room:lobby"] ?? 0, 0)

    // the log holds the frames exactly as phoenix.js sent them
    let log = await serverLog(server)
    assert.ok(Array.isArray(log))
    const joinFrame = JSON.stringify([ch.joinRef(), ch.joinRef(), "room:lobby", "phx_join", {}])
    const joinEntry = log.find(e => e.frame === joinFrame)
    assert.ok(joinEntry, `log has ${joinFrame}: ${JSON.stringify(log)}`)
    assert.equal(typeof joinEntry.conn, "number")

    okBody(await control(server, "log", {clear: 1}))
    const p = ch.push("echo", bin(1, 2, 3, 0xff))
    assert.equal((await outcome(p))[0], "ok")
    log = await serverLog(server)
    const enc = s => Buffer.from(s, "utf8")
    const jr = enc(ch.joinRef()), ref = enc(p.ref), topic = enc("room:lobby"), ev = enc("echo")
    const expected = Buffer.concat([Buffer.from([0, jr.length, ref.length, topic.length, ev.length]), jr, ref, topic, ev, Buffer.from([1, 2, 3, 0xff])]).toString("hex")
    assert.deepEqual(log, [{conn: joinEntry.conn, binary: expected}], "after clear the log only has the binary push")

    const c2 = await connected(server, {token: "stats2"})
    const ch2 = channel(c2, "room:lobby")
    assert.equal((await outcome(ch2.join()))[0], "ok")
    log = await serverLog(server)
    const conns = new Set(log.map(e => e.conn))
    assert.equal(conns.size, 2, "two connections are told apart in the log")
    s = await stats(server)
    assert.equal(s.connections, 2)
    assert.equal(s.accepted, 2)
    assert.equal(s.joins["room:lobby"], 2)
    assert.equal(s.joined["room:lobby"], 2)

    const leaveRef = ch.joinRef()
    assert.deepEqual(await outcome(ch.leave()), ["ok", {}]) // phoenix.js acknowledges a leave locally
    await c.rec.waitFor(items => items.find(i => i.kind === "msg" && i.event === "phx_close" && i.join_ref === leaveRef), "server's phx_close after the leave")
    s = await stats(server)
    assert.equal(s.leaves["room:lobby"], 1)
    assert.equal(s.joined["room:lobby"], 1)

    await disconnect(c2.socket)
    await disconnect(c.socket)
    await eventually(async () => {
      const s2 = await stats(server)
      assert.equal(s2.connections, 0)
      assert.equal(s2.joined["room:lobby"] ?? 0, 0)
      assert.equal(s2.accepted, 2)
    })

    await control(server, "nope", {}, {expectStatus: 404})
    okBody(await control(server, "reset", {}, {method: "GET"}))
  })

  it("idle timeout (--idle-timeout-ms): silent socket closed with 1002 and reconnects; heartbeats and pings keep sockets open", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer(["--idle-timeout-ms", "400"])
    const idle = await joinedClient({heartbeatIntervalMs: 30000})
    const busy = await joinedClient({heartbeatIntervalMs: 100})
    const raw = new WebSocket(`${server.url}?vsn=2.0.0`)
    const rawRec = new Recorder("raw pinger")
    raw.on("close", code => rawRec.push({kind: "close", code}))
    raw.on("pong", () => rawRec.push({kind: "pong"}))
    await new Promise((res, rej) => { raw.once("open", res); raw.once("error", rej) })
    const pinger = setInterval(() => raw.ping("hb"), 100)
    try {
      const t0 = performance.now()
      const [first] = await idle.rec.waitCount("close", 1, "idle close", 3000)
      assert.equal(first.code, 1002)
      assert.ok(first.at - t0 >= 250, `closed after ${first.at - t0} ms`)
      await idle.rec.waitCount("open", 2, "reconnect after idle close")
      await idle.rec.waitFor(() => joinsOf(idle, "room:lobby").length >= 2, "rejoin")
      await idle.rec.waitCount("close", 2, "second idle close", 3000)
      // by now more than two idle periods have passed
      assert.equal(busy.rec.of("close").length, 0, "heartbeats keep the socket open")
      assert.equal(rawRec.of("close").length, 0, "websocket pings keep the socket open")
      assert.ok(rawRec.of("pong").length >= 3, "pings are answered with pongs")
    } finally {
      clearInterval(pinger)
      raw.terminate()
    }
  })

  it("the server exits when its stdin reaches EOF", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    server.proc.stdin.end()
    const timer = setTimeout(() => server.proc.kill("SIGKILL"), 3000)
    const {signal} = await server.exited
    clearTimeout(timer)
    assert.equal(signal, null, "exited on its own, not killed")
  })
})

// ---------------------------------------------------------------------------------------------------
// authToken (Phoenix 1.8): what phoenix.js sends is what the server's `auth_token: true` reads

describe("auth token (phoenix.js authToken, server --auth-token)", () => {
  let server
  afterEach(async () => {
    await Promise.all([...sockets].map(disconnect))
    if(server){ await server.stop(); server = null }
  })

  // `??>` encodes to `Pz8+`: the standard alphabet phoenix.js's btoa uses (URL-safe would be `-`).
  for(const token of ["1234", "??>", "eyJhbGciOiJIUzI1NiJ9.e30.sig"]){
    it(`the server selects "phoenix" and hands ${JSON.stringify(token)} to connect/3`, {timeout: TEST_TIMEOUT}, async () => {
      server = await startServer(["--auth-token"])
      const c = await connected(server, {token: "p", authToken: token})
      assert.equal(c.socket.conn.protocol, "phoenix", "the subprotocol the server selected")
      const ch = channel(c, "connect_info")
      const [status, info] = await outcome(ch.join())
      assert.equal(status, "ok")
      assert.equal(info.auth_token, token)
      assert.deepEqual(info.params, {token: "p", vsn: "2.0.0"}, "the token is not in the URL")
    })
  }

  // A `/` in the encoding (`???` is `Pz8/`) is not a valid subprotocol token (RFC 6455), so a
  // browser's WebSocket (and ws) refuses it before connecting: phoenix.js cannot send such a
  // token, though the server would decode it (libphx sends it; see tests/engine/auth.rs).
  it("a token whose base64 holds `/` is refused by the WebSocket API itself", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer(["--auth-token"])
    const c = client(server, {authToken: "???"})
    assert.throws(() => c.socket.connect(), /invalid or duplicated subprotocol/)
  })

  it("without --auth-token (Phoenix 1.7) no subprotocol is selected, so the browser-style client fails", {timeout: TEST_TIMEOUT}, async () => {
    server = await startServer()
    const c = client(server, {authToken: "t"})
    c.socket.connect()
    await c.rec.waitCount("error", 1, "the handshake fails: the server selected no subprotocol")
    assert.equal(c.rec.of("open").length, 0)
  })
})
