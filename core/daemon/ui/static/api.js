// The Engine API, as the page calls it: same origin, JSON in and out, streams read line by line.
export const VERSION = "/v1.41";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function url(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    params.set(key, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  const search = params.toString();
  return VERSION + path + (search ? "?" + search : "");
}

export async function request(method, path, { query, body, signal } = {}) {
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url(path, query), init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message || message;
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

export async function json(method, path, options) {
  const text = await (await request(method, path, options)).text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, query, signal) => json("GET", path, { query, signal });
export const post = (path, query, body) => json("POST", path, { query, body });
export const del = (path, query) => json("DELETE", path, { query });

// JSON messages of a stream (events, stats, pull progress), one per line.
export async function* jsonLines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) yield JSON.parse(line);
    }
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}

// Log output: raw bytes for a terminal container, else Docker's frames (8-byte header: stream, size).
export async function* logChunks(response, tty) {
  const reader = response.body.getReader();
  const decoders = { 1: new TextDecoder(), 2: new TextDecoder() };
  let buffer = new Uint8Array(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (tty) {
      yield { stream: 1, text: decoders[1].decode(value, { stream: true }) };
      continue;
    }
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer);
    joined.set(value, buffer.length);
    buffer = joined;
    while (buffer.length >= 8) {
      const size = ((buffer[4] << 24) | (buffer[5] << 16) | (buffer[6] << 8) | buffer[7]) >>> 0;
      if (buffer.length < 8 + size) break;
      const stream = buffer[0] === 2 ? 2 : 1;
      yield { stream, text: decoders[stream].decode(buffer.subarray(8, 8 + size), { stream: true }) };
      buffer = buffer.slice(8 + size);
    }
  }
}

// "127.0.0.1:5000/me/app:1" -> ["127.0.0.1:5000/me/app", "1"]; no tag means latest.
export function splitReference(reference) {
  const at = reference.indexOf("@");
  if (at >= 0) return [reference.slice(0, at), reference.slice(at + 1)];
  const colon = reference.lastIndexOf(":");
  if (colon > reference.lastIndexOf("/")) return [reference.slice(0, colon), reference.slice(colon + 1)];
  return [reference, "latest"];
}

// A command line split into words as a shell would for simple cases: quotes group, backslash escapes.
export function splitWords(text) {
  const words = [];
  let word = null;
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? "";
    } else if (c === "\\" && i + 1 < text.length) {
      word = (word ?? "") + text[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}
