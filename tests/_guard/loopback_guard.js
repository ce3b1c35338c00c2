// The suite's loopback guard for Node processes (Azurite): `node --require` this file (NODE_OPTIONS).
// Any TCP/UDP connection or DNS lookup for a name or address outside 127.0.0.0/8, ::1 and localhost
// is refused (the socket errors) and appended to $MI_NOTEBOOK_GUARD_LOG, which the Python suite
// checks after every test, as it does for its own processes (loopback_guard.py).
"use strict";
const net = require("net");
const dgram = require("dgram");
const dns = require("dns");
const fs = require("fs");

const NAMES = new Set(["localhost", "localhost.", "ip6-localhost", "ip6-loopback"]);
function loopback(host) {
  if (host === undefined || host === null || host === "") return true;  // Node's default: localhost
  host = String(host).replace(/^\[|\]$/g, "").toLowerCase();
  if (NAMES.has(host) || host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  if (/^::ffff:127\./.test(host)) return true;
  return /^127\.\d+\.\d+\.\d+$/.test(host);
}
function refuse(what) {
  const line = `node pid ${process.pid}: ${what} refused (not loopback)\n`;
  if (process.env.MI_NOTEBOOK_GUARD_LOG) {
    try { fs.appendFileSync(process.env.MI_NOTEBOOK_GUARD_LOG, line); } catch (_) { /* best effort */ }
  }
  const err = new Error(line.trim());
  err.code = "EACCES";
  return err;
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  // net.connect() hands over its normalized [options, callback] array; a direct call, options or (port, host)
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const opts = typeof first === "object" && first !== null ? first : { port: first, host: args[1] };
  if (!opts.path && !loopback(opts.host)) {
    const err = refuse(`connect to ${opts.host}:${opts.port}`);
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return connect.apply(this, args);
};

for (const name of ["send", "connect"]) {
  const original = dgram.Socket.prototype[name];
  dgram.Socket.prototype[name] = function (...args) {
    const host = args.find((a, i) => i > 0 && typeof a === "string");
    if (host !== undefined && !loopback(host)) throw refuse(`udp ${name} to ${host}`);
    return original.apply(this, args);
  };
}

for (const api of [dns, dns.promises]) {
  for (const name of ["lookup", "resolve", "resolve4", "resolve6", "resolveAny"]) {
    const original = api[name];
    if (typeof original !== "function") continue;
    api[name] = function (host, ...rest) {
      if (!loopback(host)) {
        const err = refuse(`dns ${name} of ${host}`);
        if (api === dns.promises) return Promise.reject(err);
        const cb = rest.find((a) => typeof a === "function");
        if (cb) { process.nextTick(() => cb(err)); return undefined; }
        throw err;
      }
      return original.call(this, host, ...rest);
    };
  }
}
