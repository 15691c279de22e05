// The peer of the libphx benchmarks: the official phoenix.js client (npm phoenix@1.8.16 over
// ws@8.23.0, pinned in package-lock.json) on the same scenarios as the other clients.
//
//   node bench.mjs --url ws://127.0.0.1:PORT/socket/websocket --scenario recv|reqresp|latency|memory
//                  [--n N] [--window W] [--sockets S]
//
// Prints one line: RESULT client=phoenix-js scenario=... count=... wall_s=... cpu_s=...
// (the measured phase only; connecting, joining and the warm-up are excluded). Run it with
// --expose-gc so the memory scenario can collect garbage before reading VmRSS.

import WebSocket from "ws"
import {Socket} from "phoenix"
import {readFileSync, readdirSync} from "node:fs"

const TOPIC = "echo:bench"
const BLAST_EVENT = "m"
const ECHO_PAYLOAD = {body: "0123456789abcdef"} // the same JSON text as the other clients send
const PUSH_TIMEOUT = 600000

const warmupRecv = n => Math.min(Math.max(Math.floor(n / 10), 1), 50000)
const warmupReqresp = n => Math.min(Math.max(Math.floor(n / 10), 1), 20000)
const warmupLatency = n => Math.min(Math.max(Math.floor(n / 10), 1), 2000)

function parseArgs(argv){
  const out = {}
  for(let i = 0; i < argv.length; i++){
    const key = argv[i].replace(/^--/, "")
    const next = argv[i + 1]
    if(next !== undefined && !next.startsWith("--")){ out[key] = next; i++ } else { out[key] = "1" }
  }
  return out
}

const args = parseArgs(process.argv.slice(2))
const URL_ = args.url
const N = Number(args.n || 0)
const WINDOW = Math.max(Number(args.window || 1000), 1)
const SOCKETS = Math.max(Number(args.sockets || 1000), 1)
if(!URL_){ console.error("bench.mjs: --url is required"); process.exit(2) }
// phoenix.js appends "/websocket" (and vsn=2.0.0) to the endpoint itself.
const ENDPOINT = URL_.replace(/\/websocket$/, "")

function cpuSeconds(){
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

function rssKib(){
  const m = readFileSync("/proc/self/status", "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m)
  return m ? Number(m[1]) : 0
}

// CPU time (every thread) of the benchmark server (PHX_BENCH_SERVER_PID): the sum of
// /proc/PID/task/*/schedstat run times (ns); null if unknown.
function serverCpuSeconds(){
  const pid = process.env.PHX_BENCH_SERVER_PID
  if(!pid){ return null }
  try {
    let ns = 0
    for(const task of readdirSync(`/proc/${pid}/task`)){
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0])
    }
    return ns > 0 ? ns / 1e9 : null
  } catch { return null }
}

// Context switches (voluntary + involuntary) of the whole process so far.
function contextSwitches(){
  const u = process.resourceUsage()
  return u.voluntaryContextSwitches + u.involuntaryContextSwitches
}

// Returns a function giving [wall s, cpu s, fields for the context switches and the server's
// CPU time].
function stopwatch(){
  const server = serverCpuSeconds()
  const cpu = cpuSeconds()
  const csw = contextSwitches()
  const wall = process.hrtime.bigint()
  return () => {
    const w = Number(process.hrtime.bigint() - wall) / 1e9, c = cpuSeconds() - cpu
    const s = serverCpuSeconds()
    const extra = {csw: contextSwitches() - csw}
    if(server !== null && s !== null){ extra.server_cpu_s = (s - server).toFixed(4) }
    return [w, c, extra]
  }
}

function result(scenario, fields){
  const parts = [`RESULT client=phoenix-js scenario=${scenario}`]
  for(const [k, v] of Object.entries(fields)){ parts.push(`${k}=${v}`) }
  console.log(parts.join(" "))
}

function latencyFields(rtts){
  rtts.sort((a, b) => a - b)
  const q = p => rtts.length ? rtts[Math.min(Math.max(Math.ceil(p * rtts.length), 1), rtts.length) - 1] : 0
  const mean = rtts.reduce((a, b) => a + b, 0) / Math.max(rtts.length, 1)
  return {p50_us: q(0.5).toFixed(1), p99_us: q(0.99).toFixed(1), mean_us: mean.toFixed(1)}
}

// A connected socket with its joined channel; `setup` binds handlers before the join.
function open(setup = () => {}){
  return new Promise((resolve, reject) => {
    const socket = new Socket(ENDPOINT, {transport: WebSocket, heartbeatIntervalMs: 30000, timeout: 60000})
    socket.connect()
    const channel = socket.channel(TOPIC, {})
    setup(channel)
    channel.join()
      .receive("ok", () => resolve({socket, channel}))
      .receive("error", e => reject(new Error(`join refused: ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error("join timed out")))
  })
}

async function recv(){
  let count = 0, target = -1, reached = null
  const {channel} = await open(ch => ch.on(BLAST_EVENT, () => {
    if(++count === target){ reached() }
  }))
  const blast = n => Promise.all([
    new Promise(res => { target = count + n; reached = res }),
    new Promise((res, rej) => channel.push("blast", {n}, PUSH_TIMEOUT)
      .receive("ok", res).receive("error", rej).receive("timeout", rej)),
  ])
  await blast(warmupRecv(N))
  const before = count
  const stop = stopwatch()
  await blast(N)
  const [wall, cpu, server] = stop()
  result("recv", {count: count - before, wall_s: wall.toFixed(4), cpu_s: cpu.toFixed(4), ...server})
}

// `total` pushes with at most `window` unanswered; each reply pushes the next.
function pipeline(channel, total, window){
  return new Promise(resolve => {
    let issued = 0, completed = 0, errors = 0
    const onReply = ok => () => {
      if(!ok){ errors++ }
      issue()
      if(++completed === total){ resolve({completed, errors}) }
    }
    const onOk = onReply(true), onError = onReply(false)
    function issue(){
      if(issued >= total){ return }
      issued++
      channel.push("echo", ECHO_PAYLOAD, PUSH_TIMEOUT).receive("ok", onOk).receive("error", onError)
    }
    for(let i = 0; i < Math.min(window, total); i++){ issue() }
  })
}

async function reqresp(){
  const {channel} = await open()
  await pipeline(channel, warmupReqresp(N), WINDOW)
  const stop = stopwatch()
  const {completed, errors} = await pipeline(channel, N, WINDOW)
  const [wall, cpu, server] = stop()
  result("reqresp", {count: completed, window: WINDOW, errors, wall_s: wall.toFixed(4), cpu_s: cpu.toFixed(4), ...server})
}

// One push at a time; each reply records its round trip and pushes the next.
function roundTrips(channel, n, rtts){
  return new Promise((resolve, reject) => {
    let done = 0, sentAt = 0n
    const onOk = () => {
      const rtt = Number(process.hrtime.bigint() - sentAt) / 1e3
      if(rtts){ rtts.push(rtt) }
      if(++done < n){ ping() } else { resolve() }
    }
    const onError = e => reject(new Error(`echo failed: ${JSON.stringify(e)}`))
    function ping(){
      sentAt = process.hrtime.bigint()
      channel.push("echo", ECHO_PAYLOAD, PUSH_TIMEOUT).receive("ok", onOk).receive("error", onError)
    }
    ping()
  })
}

async function latency(){
  const {channel} = await open()
  await roundTrips(channel, warmupLatency(N), null)
  const rtts = []
  const stop = stopwatch()
  await roundTrips(channel, N, rtts)
  const [wall, cpu, server] = stop()
  result("latency", {count: rtts.length, wall_s: wall.toFixed(4), cpu_s: cpu.toFixed(4), ...server, ...latencyFields(rtts)})
}

async function settle(){
  await new Promise(res => setTimeout(res, 300))
  if(global.gc){ global.gc(); global.gc() }
}

async function memory(){
  const keep = []
  keep.push(...await Promise.all(Array.from({length: 10}, () => open())))
  await settle()
  const before = rssKib()
  const stop = stopwatch()
  keep.push(...await Promise.all(Array.from({length: SOCKETS}, () => open())))
  const [wall, cpu, server] = stop()
  await settle()
  const after = rssKib()
  result("memory", {
    count: SOCKETS, rss_before_kib: before, rss_after_kib: after,
    kib_per_socket: (Math.max(after - before, 0) / SOCKETS).toFixed(2),
    wall_s: wall.toFixed(4), cpu_s: cpu.toFixed(4), ...server,
  })
}

const scenarios = {recv, reqresp, latency, memory}
const run = scenarios[args.scenario]
if(!run){ console.error(`bench.mjs: unknown scenario ${args.scenario}`); process.exit(2) }
run().then(
  () => process.exit(0),
  e => { console.error(`bench.mjs: ${e.stack || e}`); process.exit(2) },
)
