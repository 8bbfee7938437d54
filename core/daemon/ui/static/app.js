// dockyard's web UI: a Preact app over the Engine API of the daemon that serves it (no build step).
import { h, render } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import { ApiError, del, get, jsonLines, logChunks, post, request, splitReference, splitWords } from "./api.js";
import { LayerTree, LineChart } from "./charts.js";
import { ago, containerName, cpuPercent, humanSize, memoryUsage, ports, shortId } from "./format.js";

const html = htm.bind(h);

// -- small helpers ------------------------------------------------------------------------------------------

let showError = () => {};

async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    if (error.name !== "AbortError") showError(error instanceof ApiError ? error.message : String(error));
    return undefined;
  }
}

function useHash() {
  const [hash, setHash] = useState(location.hash || "#/");
  useEffect(() => {
    const changed = () => setHash(location.hash || "#/");
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

// Call `load` now and every `ms` while mounted; returns [value, reload].
function usePoll(load, ms, deps = []) {
  const [value, setValue] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    const controller = new AbortController();
    const run = async () => {
      try {
        const result = await load(controller.signal);
        if (alive) setValue(result);
      } catch (error) {
        if (alive && error.name !== "AbortError") setValue((old) => old ?? { error: error.message });
      }
    };
    run();
    const timer = setInterval(run, ms);
    return () => {
      alive = false;
      controller.abort();
      clearInterval(timer);
    };
  }, [...deps, tick]);
  return [value, () => setTick((t) => t + 1)];
}

// Read a streaming response until unmounted; `onMessage` gets each item of `reader(response)`.
function useStream(open, reader, onMessage, deps) {
  const [ended, setEnded] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    setEnded(false);
    (async () => {
      try {
        const response = await open(controller.signal);
        for await (const item of reader(response)) onMessage(item);
        setEnded(true);
      } catch (error) {
        if (error.name !== "AbortError") {
          setEnded(true);
          showError(error.message);
        }
      }
    })();
    return () => controller.abort();
  }, deps);
  return ended;
}

function State({ state }) {
  return html`<span class="badge state-${state}" data-test="state">${state}</span>`;
}

function Button({ onClick, children, kind = "", test, disabled }) {
  const [busy, setBusy] = useState(false);
  const click = async (event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await onClick();
    } finally {
      setBusy(false);
    }
  };
  return html`<button class="btn ${kind}" data-test=${test} disabled=${busy || disabled} onClick=${click}>${children}</button>`;
}

// -- container actions --------------------------------------------------------------------------------------

const ACTIONS = {
  start: (id) => post(`/containers/${id}/start`),
  stop: (id) => post(`/containers/${id}/stop`, { t: 5 }),
  restart: (id) => post(`/containers/${id}/restart`, { t: 5 }),
  kill: (id) => post(`/containers/${id}/kill`),
  pause: (id) => post(`/containers/${id}/pause`),
  unpause: (id) => post(`/containers/${id}/unpause`),
  rm: (id) => del(`/containers/${id}`, { force: 1, v: 1 }),
};

function actionsFor(state) {
  if (state === "running") return ["stop", "restart", "kill", "pause", "rm"];
  if (state === "paused") return ["unpause", "kill", "rm"];
  return ["start", "rm"];
}

function ContainerActions({ id, state, done }) {
  return html`<span class="actions">${actionsFor(state).map((name) => html`
    <${Button} kind=${name === "rm" || name === "kill" ? "danger" : ""} test=${`action-${name}`}
      onClick=${() => attempt(async () => { await ACTIONS[name](id); done && done(name); })}>${name}<//>`)}
  </span>`;
}

// -- dashboard ----------------------------------------------------------------------------------------------

function useUsage(containers) {
  const previous = useRef(new Map());
  const [usage, setUsage] = useState({});
  const running = (containers || []).filter((c) => c.State === "running").map((c) => c.Id).join(",");
  useEffect(() => {
    let alive = true;
    const sample = async () => {
      const next = {};
      for (const id of running ? running.split(",") : []) {
        const stats = await get(`/containers/${id}/stats`, { stream: 0, "one-shot": 1 }).catch(() => null);
        if (!stats) continue;
        const before = previous.current.get(id);
        previous.current.set(id, stats);
        next[id] = { cpu: before ? cpuPercent(stats, before) : null, memory: memoryUsage(stats),
                     limit: stats.memory_stats?.limit };
      }
      if (alive) setUsage(next);
    };
    sample();
    const timer = setInterval(sample, 3000);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [running]);
  return usage;
}

function ContainerTable({ containers, reload }) {
  const usage = useUsage(containers);
  if (!containers) return html`<p class="muted">Loading…</p>`;
  if (containers.error) return html`<p class="error-text">${containers.error}</p>`;
  if (!containers.length) return html`<p class="muted" data-test="no-containers">No containers. Run one.</p>`;
  return html`<table class="grid" data-test="containers">
    <thead><tr><th>Name</th><th>Image</th><th>State</th><th>Status</th><th>Ports</th><th>CPU</th><th>Memory</th><th></th></tr></thead>
    <tbody>${containers.map((c) => {
      const use = usage[c.Id];
      return html`<tr key=${c.Id} data-test="container-row" data-name=${containerName(c)}>
        <td><a href=${`#/containers/${c.Id}`} data-test="container-link">${containerName(c)}</a><div class="muted mono">${shortId(c.Id)}</div></td>
        <td class="mono">${c.Image}</td>
        <td><${State} state=${c.State} /></td>
        <td>${c.Status}</td>
        <td class="mono">${ports(c.Ports)}</td>
        <td class="num">${use && use.cpu !== null ? `${use.cpu.toFixed(1)}%` : ""}</td>
        <td class="num">${use ? humanSize(use.memory) : ""}</td>
        <td><${ContainerActions} id=${c.Id} state=${c.State} done=${reload} /></td>
      </tr>`;
    })}</tbody>
  </table>`;
}

function RunForm({ onDone }) {
  const [form, setForm] = useState({ image: "busybox:latest", name: "", command: "", ports: "", env: "", volumes: "" });
  const field = (key) => (event) => setForm({ ...form, [key]: event.target.value });
  const submit = () => attempt(async () => {
    const exposed = {};
    const bindings = {};
    for (const spec of form.ports.split(/[\s,]+/).filter(Boolean)) {
      const parts = spec.split(":");
      const [port, proto = "tcp"] = parts.pop().split("/");
      const key = `${port}/${proto}`;
      exposed[key] = {};
      bindings[key] = [{ HostIp: parts.length > 1 ? parts[0] : "", HostPort: parts.length ? parts[parts.length - 1] : "" }];
    }
    const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
    const command = splitWords(form.command);
    const body = {
      Image: form.image.trim(), Cmd: command.length ? command : null, Env: lines(form.env),
      ExposedPorts: exposed, Tty: false, OpenStdin: false, AttachStdout: false, AttachStderr: false,
      HostConfig: { PortBindings: bindings, Binds: lines(form.volumes) },
    };
    const created = await post("/containers/create", { name: form.name.trim() }, body);
    await post(`/containers/${created.Id}/start`);
    onDone(created.Id);
  });
  return html`<form class="card form" data-test="run-form" onSubmit=${(e) => { e.preventDefault(); submit(); }}>
    <h3>Run a container</h3>
    <label>Image <input name="image" value=${form.image} onInput=${field("image")} required /></label>
    <label>Name <input name="name" value=${form.name} onInput=${field("name")} placeholder="optional" /></label>
    <label class="wide">Command <input name="command" value=${form.command} onInput=${field("command")}
      placeholder="the image's default" /></label>
    <label>Ports <input name="ports" value=${form.ports} onInput=${field("ports")} placeholder="8080:80, 127.0.0.1:9000:90/udp" /></label>
    <label>Environment <textarea name="env" rows="2" value=${form.env} onInput=${field("env")} placeholder="KEY=value, one a line" /></label>
    <label>Volumes <textarea name="volumes" rows="2" value=${form.volumes} onInput=${field("volumes")} placeholder="data:/data or /host:/path:ro" /></label>
    <div class="form-actions"><${Button} kind="primary" test="run-submit" onClick=${submit}>Run<//></div>
  </form>`;
}

function Dashboard() {
  const [containers, reload] = usePoll((signal) => get("/containers/json", { all: 1 }, signal), 2000);
  const [images] = usePoll((signal) => get("/images/json", {}, signal), 5000);
  const [volumes] = usePoll((signal) => get("/volumes", {}, signal), 5000);
  const [networks] = usePoll((signal) => get("/networks", {}, signal), 5000);
  const [running, setRunning] = useState(false);
  const list = Array.isArray(containers) ? containers : [];
  return html`<section>
    <div class="cards">
      <div class="card stat"><b data-test="count-running">${list.filter((c) => c.State === "running").length}</b> running${" "}
        <span class="muted">of ${list.length} containers</span></div>
      <div class="card stat"><b>${Array.isArray(images) ? images.length : "…"}</b> images${" "}
        <span class="muted">${Array.isArray(images) ? humanSize(images.reduce((n, i) => n + (i.Size || 0), 0)) : ""}</span></div>
      <div class="card stat"><b>${volumes?.Volumes ? volumes.Volumes.length : "…"}</b> volumes</div>
      <div class="card stat"><b>${Array.isArray(networks) ? networks.length : "…"}</b> networks</div>
    </div>
    <div class="bar"><h2>Containers</h2>
      <${Button} kind="primary" test="open-run" onClick=${() => setRunning(!running)}>${running ? "Close" : "Run a container"}<//></div>
    ${running && html`<${RunForm} onDone=${(id) => { setRunning(false); location.hash = `#/containers/${id}`; }} />`}
    <${ContainerTable} containers=${containers} reload=${reload} />
    <div class="columns">
      <div><h2>Volumes</h2>
        <table class="grid"><thead><tr><th>Name</th><th>Driver</th><th>Mount point</th></tr></thead>
        <tbody>${(volumes?.Volumes || []).map((v) => html`<tr key=${v.Name}><td class="mono">${v.Name}</td><td>${v.Driver}</td><td class="mono">${v.Mountpoint}</td></tr>`)}</tbody></table></div>
      <div><h2>Networks</h2>
        <table class="grid"><thead><tr><th>Name</th><th>Driver</th><th>Subnet</th></tr></thead>
        <tbody>${(Array.isArray(networks) ? networks : []).map((n) => html`<tr key=${n.Id}><td>${n.Name}</td><td>${n.Driver}</td>
          <td class="mono">${(n.IPAM?.Config || []).map((c) => c.Subnet).join(", ")}</td></tr>`)}</tbody></table></div>
    </div>
    <h2>Events</h2>
    <${EventFeed} limit=${8} />
  </section>`;
}

// -- a container --------------------------------------------------------------------------------------------

function Logs({ id, tty }) {
  const [lines, setLines] = useState([]);
  const box = useRef(null);
  const ended = useStream(
    (signal) => request("GET", `/containers/${id}/logs`, { query: { follow: 1, stdout: 1, stderr: 1, tail: 500 }, signal }),
    (response) => logChunks(response, tty),
    ({ stream, text }) => setLines((old) => [...old, { stream, text }].slice(-2000)),
    [id, tty]);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines]);
  return html`<pre class="logs" ref=${box} data-test="logs">${lines.map((l, i) => html`<span key=${i} class=${l.stream === 2 ? "stderr" : ""}>${l.text}</span>`)}${ended && html`<span class="muted" data-test="logs-ended">\n— end of log stream —</span>`}</pre>`;
}

function Terminal({ id }) {
  const host = useRef(null);
  const [status, setStatus] = useState("connecting");
  useEffect(() => {
    const term = new window.Terminal({ cursorBlink: true, fontSize: 13, convertEol: false,
                                       theme: { background: "#10151c" } });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(host.current);
    fit.fit();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ui/terminal/${id}`);
    socket.binaryType = "arraybuffer";
    const encoder = new TextEncoder();
    const resize = () => {
      fit.fit();
      if (socket.readyState === 1) socket.send(JSON.stringify({ resize: [term.cols, term.rows] }));
    };
    socket.onopen = () => { setStatus("connected"); resize(); term.focus(); };
    socket.onmessage = (event) => term.write(new Uint8Array(event.data));
    socket.onclose = () => { setStatus("closed"); term.write("\r\n[session ended]\r\n"); };
    const input = term.onData((data) => socket.readyState === 1 && socket.send(encoder.encode(data)));
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      input.dispose();
      socket.close();
      term.dispose();
    };
  }, [id]);
  return html`<div><p class="muted">A shell (<code>sh</code>) in the container, over a websocket: <span data-test="terminal-status">${status}</span></p>
    <div class="terminal" ref=${host} data-test="terminal"></div></div>`;
}

function JsonTree({ value, name, depth = 0 }) {
  if (value === null || typeof value !== "object") {
    const kind = value === null ? "null" : typeof value;
    return html`<div class="json-leaf">${name !== undefined && html`<span class="json-key">${name}: </span>`}<span class=${`json-${kind}`}>${JSON.stringify(value)}</span></div>`;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return html`<details class="json-node" open=${depth < 2} data-key=${name}>
    <summary>${name !== undefined && html`<span class="json-key">${name}: </span>`}<span class="muted">${summary}</span></summary>
    ${entries.map(([k, v]) => html`<${JsonTree} key=${k} name=${k} value=${v} depth=${depth + 1} />`)}
  </details>`;
}

function Processes({ id }) {
  const [top, reload] = usePoll((signal) => get(`/containers/${id}/top`, {}, signal), 3000, [id]);
  if (!top) return html`<p class="muted">Loading…</p>`;
  if (top.error) return html`<p class="error-text">${top.error}</p>`;
  return html`<div><${Button} onClick=${reload}>Refresh<//>
    <table class="grid" data-test="processes"><thead><tr>${top.Titles.map((t) => html`<th>${t}</th>`)}</tr></thead>
    <tbody>${top.Processes.map((row) => html`<tr>${row.map((cell) => html`<td class="mono">${cell}</td>`)}</tr>`)}</tbody></table></div>`;
}

function Stats({ id }) {
  const [samples, setSamples] = useState([]);
  const ended = useStream(
    (signal) => request("GET", `/containers/${id}/stats`, { query: { stream: 1 }, signal }),
    jsonLines,
    (sample) => setSamples((old) => [...old, sample].slice(-61)),
    [id]);
  const cpu = samples.slice(1).map((s, i) => cpuPercent(s, samples[i]));
  const memory = samples.map(memoryUsage);
  const last = samples[samples.length - 1];
  const nets = Object.values(last?.networks || {});
  return html`<div data-test="stats">
    <div class="charts">
      <${LineChart} title="CPU" points=${cpu} format=${(v) => `${v.toFixed(1)}%`} test="cpu-chart" />
      <${LineChart} title="Memory" points=${memory} format=${humanSize} test="memory-chart" />
    </div>
    <p class="muted">${samples.length} samples${last?.pids_stats?.current ? `, ${last.pids_stats.current} processes` : ""}${nets.length
      ? `, network ${humanSize(nets.reduce((n, x) => n + (x.rx_bytes || 0), 0))} in / ${humanSize(nets.reduce((n, x) => n + (x.tx_bytes || 0), 0))} out` : ""}${ended ? " (stream ended)" : ""}</p>
  </div>`;
}

function Commit({ id }) {
  const [reference, setReference] = useState("");
  const [made, setMade] = useState("");
  const commit = () => attempt(async () => {
    const [repo, tag] = splitReference(reference.trim());
    const answer = await post("/commit", { container: id, repo, tag });
    setMade(`${reference} ${shortId(answer.Id)}`);
  });
  return html`<form class="inline" onSubmit=${(e) => { e.preventDefault(); commit(); }}>
    <input placeholder="repository:tag" value=${reference} data-test="commit-ref" onInput=${(e) => setReference(e.target.value)} />
    <${Button} test="commit" onClick=${commit} disabled=${!reference.trim()}>commit<//>
    ${made && html`<span class="muted" data-test="committed">made ${made}</span>`}</form>`;
}

const TABS = ["logs", "terminal", "inspect", "processes", "stats"];

function ContainerPage({ id }) {
  const [info, reload] = usePoll((signal) => get(`/containers/${id}/json`, {}, signal), 2000, [id]);
  const [tab, setTab] = useState("logs");
  if (!info) return html`<p class="muted">Loading…</p>`;
  if (info.error) return html`<p class="error-text" data-test="gone">${info.error} <a href="#/">back</a></p>`;
  const state = info.State.Status;
  const running = state === "running";
  return html`<section>
    <div class="bar"><h2><a href="#/">Containers</a> / <span data-test="container-name">${info.Name.replace(/^\//, "")}</span></h2>
      <${State} state=${state} /></div>
    <p class="muted mono">${shortId(info.Id)} · ${info.Config.Image} · ${(info.Config.Entrypoint || []).concat(info.Config.Cmd || []).join(" ")}
      · ${running ? `up since ${new Date(info.State.StartedAt).toLocaleString()}` : `exit code ${info.State.ExitCode}`}</p>
    <div class="bar">
      <${ContainerActions} id=${id} state=${state} done=${(name) => (name === "rm" ? (location.hash = "#/") : reload())} />
      <${Commit} id=${id} />
    </div>
    <nav class="tabs">${TABS.map((name) => html`<button type="button" class=${tab === name ? "active" : ""}
      data-test=${`tab-${name}`} onClick=${() => setTab(name)}>${name}</button>`)}</nav>
    ${tab === "logs" && html`<${Logs} key=${info.State.StartedAt} id=${id} tty=${info.Config.Tty} />`}
    ${tab === "terminal" && (running ? html`<${Terminal} id=${id} />` : html`<p class="muted">Start the container to open a shell.</p>`)}
    ${tab === "inspect" && html`<div class="json" data-test="inspect"><${JsonTree} value=${info} /></div>`}
    ${tab === "processes" && (running ? html`<${Processes} id=${id} />` : html`<p class="muted">Not running.</p>`)}
    ${tab === "stats" && (running ? html`<${Stats} key=${info.State.StartedAt} id=${id} />` : html`<p class="muted">Not running.</p>`)}
  </section>`;
}

// -- images -------------------------------------------------------------------------------------------------

function Pull({ done }) {
  const [reference, setReference] = useState("");
  const [layers, setLayers] = useState({});
  const [log, setLog] = useState([]);
  const [state, setState] = useState("idle");
  const pull = () => attempt(async () => {
    const [image, tag] = splitReference(reference.trim());
    setLayers({});
    setLog([]);
    setState("pulling");
    try {
      const response = await request("POST", "/images/create", { query: { fromImage: image, tag } });
      for await (const message of jsonLines(response)) {
        if (message.error) throw new Error(message.error);
        if (message.id && message.progressDetail !== undefined) {
          setLayers((old) => ({ ...old, [message.id]: { status: message.status, ...old[message.id],
            ...(message.progressDetail.total ? message.progressDetail : {}), latest: message.status } }));
        } else if (message.status) {
          setLog((old) => [...old, message.id ? `${message.id}: ${message.status}` : message.status]);
        }
      }
      setState("done");
      done();
    } catch (error) {
      setState("failed");
      throw error;
    }
  });
  const rows = Object.entries(layers);
  const total = rows.reduce((n, [, l]) => n + (l.total || 0), 0);
  const finished = (l) => /complete|exists|Already/i.test(l.latest || "");
  const current = rows.reduce((n, [, l]) => n + (finished(l) ? l.total || 0 : l.current || 0), 0);
  const percent = state === "done" ? 100 : total ? Math.floor((current / total) * 100) : 0;
  return html`<form class="card form" data-test="pull-form" onSubmit=${(e) => { e.preventDefault(); pull(); }}>
    <h3>Pull an image</h3>
    <div class="inline"><input name="reference" placeholder="busybox:latest or registry:5000/repo:tag" value=${reference}
      onInput=${(e) => setReference(e.target.value)} data-test="pull-ref" />
    <${Button} kind="primary" test="pull-submit" onClick=${pull} disabled=${!reference.trim() || state === "pulling"}>Pull<//></div>
    ${state !== "idle" && html`<div class="pull">
      <div class="progress" role="progressbar" aria-valuenow=${percent} aria-valuemin="0" aria-valuemax="100" data-test="pull-progress"
        data-state=${state}><div style=${`width:${percent}%`}></div><span>${percent}% ${total ? `of ${humanSize(total)}` : ""}</span></div>
      ${rows.map(([id, l]) => html`<div class="layer-row" key=${id}><span class="mono">${id}</span> <span>${l.latest}</span>
        ${l.total ? html`<progress max=${l.total} value=${finished(l) ? l.total : l.current || 0}></progress>` : ""}</div>`)}
      <pre class="pull-log" data-test="pull-log">${log.join("\n")}</pre></div>`}
  </form>`;
}

function ImagesPage() {
  const [images, reload] = usePoll((signal) => get("/images/json", { all: 1 }, signal), 5000);
  const [tree, setTree] = useState([]);
  const [tagging, setTagging] = useState({});
  const list = Array.isArray(images) ? images : [];
  const ids = list.map((i) => i.Id + (i.RepoTags || []).join(" ")).join(",");
  useEffect(() => {
    let alive = true;
    (async () => {
      const rows = [];
      for (const image of list) {
        const info = await get(`/images/${image.Id}/json`).catch(() => null);
        if (info) rows.push({ id: image.Id, tags: (image.RepoTags || []).filter((t) => t !== "<none>:<none>"), layers: info.RootFS?.Layers || [] });
      }
      if (alive) setTree(rows);
    })();
    return () => { alive = false; };
  }, [ids]);
  const tag = (id) => attempt(async () => {
    const [repo, tagName] = splitReference((tagging[id] || "").trim());
    await post(`/images/${id}/tag`, { repo, tag: tagName });
    setTagging({ ...tagging, [id]: "" });
    reload();
  });
  const remove = (name) => attempt(async () => { await del(`/images/${encodeURIComponent(name)}`); reload(); });
  return html`<section>
    <${Pull} done=${reload} />
    <h2>Images</h2>
    <table class="grid" data-test="images"><thead><tr><th>Tags</th><th>ID</th><th>Created</th><th>Size</th><th>Tag as</th><th></th></tr></thead>
    <tbody>${list.map((image) => html`<tr key=${image.Id} data-test="image-row">
      <td class="mono">${(image.RepoTags || []).filter((t) => t !== "<none>:<none>").join(", ") || "<none>"}</td>
      <td class="mono">${shortId(image.Id)}</td><td>${ago(image.Created)}</td><td class="num">${humanSize(image.Size)}</td>
      <td><form class="inline" onSubmit=${(e) => { e.preventDefault(); tag(image.Id); }}>
        <input placeholder="repository:tag" value=${tagging[image.Id] || ""} data-test="tag-ref"
          onInput=${(e) => setTagging({ ...tagging, [image.Id]: e.target.value })} />
        <${Button} test="tag" onClick=${() => tag(image.Id)}>tag<//></form></td>
      <td>${((image.RepoTags || []).filter((t) => t !== "<none>:<none>").length ? image.RepoTags : [image.Id]).map((name) =>
        html`<${Button} kind="danger" test="rmi" onClick=${() => remove(name)}>rmi ${name.startsWith("sha256:") ? "" : name}<//> `)}</td>
    </tr>`)}</tbody></table>
    <h2>Layer tree</h2>
    <p class="muted">Each box is a layer on top of the one to its left; images that share layers share a branch.</p>
    <${LayerTree} images=${tree} />
  </section>`;
}

// -- events -------------------------------------------------------------------------------------------------

function EventFeed({ limit = 200 }) {
  const [events, setEvents] = useState([]);
  useStream(
    (signal) => request("GET", "/events", { query: { since: Math.floor(Date.now() / 1000) - 600 }, signal }),
    jsonLines,
    (event) => setEvents((old) => [event, ...old].slice(0, limit)),
    [limit]);
  if (!events.length) return html`<p class="muted" data-test="events">Waiting for events…</p>`;
  return html`<table class="grid events" data-test="events"><tbody>${events.map((e, i) => html`<tr key=${i} data-test="event">
    <td class="muted">${new Date((e.timeNano ? e.timeNano / 1e6 : e.time * 1000)).toLocaleTimeString()}</td>
    <td>${e.Type}</td><td><b>${e.Action}</b></td>
    <td class="mono">${e.Actor?.Attributes?.name || shortId(e.Actor?.ID || e.id)}</td>
    <td class="muted mono">${e.Actor?.Attributes?.image || ""}</td></tr>`)}</tbody></table>`;
}

function EventsPage() {
  return html`<section><h2>Events</h2><p class="muted">Live, from the last ten minutes on.</p><${EventFeed} /></section>`;
}

// -- the page -----------------------------------------------------------------------------------------------

function App() {
  const hash = useHash();
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(null);
  showError = useCallback((message) => setError(message), []);
  useEffect(() => { get("/version").then(setVersion).catch(() => {}); }, []);
  let page;
  const match = hash.match(/^#\/containers\/([0-9a-f]+)/);
  if (match) page = html`<${ContainerPage} key=${match[1]} id=${match[1]} />`;
  else if (hash.startsWith("#/images")) page = html`<${ImagesPage} />`;
  else if (hash.startsWith("#/events")) page = html`<${EventsPage} />`;
  else page = html`<${Dashboard} />`;
  const link = (href, label) => html`<a href=${href} class=${(hash === href || (href !== "#/" && hash.startsWith(href))) ? "active" : ""}
    data-test=${`nav-${label.toLowerCase()}`}>${label}</a>`;
  return html`<header>
      <a class="brand" href="#/">⚓ dockyard</a>
      <nav>${link("#/", "Dashboard")}${link("#/images", "Images")}${link("#/events", "Events")}<a href="/docs" target="_blank">API</a></nav>
      <span class="muted">${version ? `${version.Version} · API ${version.ApiVersion} · ${version.KernelVersion}` : ""}</span>
    </header>
    ${error && html`<div class="toast" data-test="error" onClick=${() => setError(null)}>${error} <b>×</b></div>`}
    <main>${page}</main>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
