// The Switchboard console: signs staff in through /api/user/login, then
// reads the console's admin routes with the token, which it keeps in this
// tab only (sessionStorage). Figures arrive as server-sent events, read
// with fetch because EventSource cannot send a token.
'use strict';

const KEY = 'switchboard.console.token';
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(KEY) || '';
let streamAbort = null;
let traceTimer = 0;
let shownTrace = '';

// h builds an element: h('td', {class: 'n'}, 'text', child...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k !== undefined && k !== null && k !== false) el.append(k instanceof Node ? k : String(k));
  }
  return el;
}

function fixed(v, digits) {
  return v === null || v === undefined ? '—' : Number(v).toFixed(digits);
}
function pct(v) { return v === null || v === undefined ? '—' : (v * 100).toFixed(1) + ' %'; }
function ms(v) { return v === null || v === undefined ? '—' : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + ' ms'; }
function bytes(v) {
  if (v === null || v === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : String(v)) + ' ' + units[i];
}
function clock(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? '—' : d.toLocaleTimeString([], {hour12: false});
}
function money(cents) { return typeof cents === 'number' ? (cents / 100).toFixed(2) : '—'; }

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function setStatus(text) { $('status').textContent = text; }

// --- sign-in ---------------------------------------------------------------

function showLogin(message) {
  stopStream();
  token = '';
  sessionStorage.removeItem(KEY);
  $('board').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setStatus('Signed out');
  $('email').focus();
}

function showBoard() {
  $('login').hidden = true;
  $('board').hidden = false;
  $('logout').hidden = false;
  startStream();
  refreshTraces();
  loadTraceFromHash();
}

async function login(ev) {
  ev.preventDefault();
  const email = $('email').value.trim();
  const password = $('password').value;
  if (!email || !password) {
    $('login-error').textContent = 'Enter your e-mail and password.';
    return;
  }
  $('login-error').textContent = '';
  let res;
  try {
    res = await fetch('/api/user/login', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({email, password}),
    });
  } catch (e) {
    $('login-error').textContent = 'The gateway did not answer.';
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.token) {
    $('login-error').textContent = (body.error && body.error.message) || 'Sign-in failed.';
    return;
  }
  token = body.token;
  sessionStorage.setItem(KEY, token);
  $('password').value = '';
  showBoard();
}

async function logout() {
  const t = token;
  showLogin('Signed out.');
  if (t) {
    await fetch('/api/user/logout', {method: 'POST', headers: {Authorization: 'Bearer ' + t}}).catch(() => {});
  }
}

// api GETs a console route with the token; on 401 or 403 it signs out.
async function api(path) {
  const res = await fetch(path, {headers: {Authorization: 'Bearer ' + token}});
  if (res.status === 401 || res.status === 403) {
    const body = await res.json().catch(() => ({}));
    showLogin(res.status === 403 ? 'This account is not staff: the console is for admins.' :
      ((body.error && body.error.message) || 'Your session ended: sign in again.'));
    return null;
  }
  if (!res.ok) return null;
  return res.json();
}

// --- the event stream ------------------------------------------------------

function stopStream() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
}

async function startStream() {
  stopStream();
  const ctrl = new AbortController();
  streamAbort = ctrl;
  while (!ctrl.signal.aborted && token) {
    try {
      const res = await fetch('/console/api/events', {headers: {Authorization: 'Bearer ' + token}, signal: ctrl.signal});
      if (res.status === 401 || res.status === 403) {
        showLogin(res.status === 403 ? 'This account is not staff: the console is for admins.' : 'Your session ended: sign in again.');
        return;
      }
      if (!res.ok || !res.body) throw new Error('status ' + res.status);
      setStatus('Live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (onEvent(block) === 'end') return;
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setStatus('Reconnecting…');
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function onEvent(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (event === 'end') {
    showLogin(JSON.parse(data.join('\n') || '""') || 'Your session ended: sign in again.');
    return 'end';
  }
  if (event === 'snapshot') render(JSON.parse(data.join('\n')));
  return '';
}

// --- rendering -------------------------------------------------------------

function render(s) {
  setStatus('Live · ' + clock(s.at));
  renderServices(s.services || []);
  renderFlow(s.flow || {});
  renderStreaming(s.streaming || {});
  renderBroker(s.broker || {});
}

function stateCell(text, cls) { return h('td', {}, h('span', {class: 'state ' + cls}, text)); }

function renderServices(list) {
  replaceRows($('services').tBodies[0], list.map((s) => {
    const ready = s.instances > 0 && s.ready === s.instances;
    const breaker = s.breaker || '';
    const bcls = breaker === 'open' ? 'bad' : breaker === 'half-open' ? 'warn' : 'ok';
    const ecls = s.errorRatio > 0.05 ? 'bad' : s.errorRatio > 0 ? 'warn' : '';
    return h('tr', {'data-service': s.name, title: s.error || null},
      h('th', {scope: 'row'}, s.name),
      h('td', {class: ready ? 'ok' : 'bad'}, `${s.ready}/${s.instances}`),
      h('td', {}, fixed(s.requestsPerSec, 1)),
      h('td', {class: ecls}, pct(s.errorRatio)),
      h('td', {}, ms(s.p99Ms)),
      breaker ? stateCell(breaker, bcls) : h('td', {class: 'muted'}, '—'));
  }));
}

// Fields of an order the table shows in their own columns or leaves out;
// any other field is a saga step or state, shown as it comes.
const ORDER_FIELDS = new Set(['id', 'userId', 'status', 'items', 'total', 'paymentMethod', 'shippingAddress',
  'paymentId', 'error', 'refund', 'history', 'createdAt', 'updatedAt', 'leaseUntil', 'leaseOwner', 'traceId',
  'requestHash', 'email', 'errStatus']);

function compact(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return v.map(compact).join(', ');
  for (const k of ['status', 'state', 'phase', 'result']) {
    if (typeof v[k] === 'string') return v[k];
  }
  return JSON.stringify(v);
}

// steps lists an order's saga steps: named steps when the record keeps
// them (an object or a list), else the history of its statuses; then any
// other field the table does not know.
function steps(o) {
  const out = [];
  const named = o.steps;
  if (Array.isArray(named)) {
    for (const st of named) out.push(`${st.name || st.step || '?'}: ${compact(st)}`);
  } else if (named && typeof named === 'object') {
    for (const [k, v] of Object.entries(named)) out.push(`${k}: ${compact(v)}`);
  } else if (Array.isArray(o.history)) {
    for (const c of o.history) out.push(c.status + (c.reason ? ` (${c.reason})` : ''));
  }
  for (const [k, v] of Object.entries(o)) {
    if (k !== 'steps' && !ORDER_FIELDS.has(k) && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0)) {
      out.push(`${k}: ${compact(v)}`);
    }
  }
  return out;
}

function statusClass(s) {
  return s === 'confirmed' ? 'ok' : s === 'cancelled' || s === 'failed' ? 'bad' : s === 'refunded' ? 'muted' : 'warn';
}

function renderFlow(f) {
  $('confirmed').textContent = fixed(f.confirmedPerSec, 2);
  $('cancelled').textContent = fixed(f.cancelledPerSec, 2);
  $('flow-error').textContent = f.error || '';
  replaceRows($('orders').tBodies[0], (f.orders || []).map((o) => {
    const list = steps(o);
    const href = o.traceId ? '#trace=' + encodeURIComponent(o.traceId) : '#order=' + encodeURIComponent(o.id);
    return h('tr', {'data-order-id': o.id, 'data-status': o.status},
      h('th', {scope: 'row', title: o.id}, h('code', {}, String(o.id).slice(0, 10))),
      stateCell(o.status || '—', statusClass(o.status)),
      h('td', {title: list.join(' → ')}, h('span', {class: 'steps'}, list.map((t) => h('span', {class: 'step'}, t)))),
      h('td', {}, money(o.total)),
      h('td', {}, clock(o.updatedAt)),
      h('td', {}, h('a', {href, 'aria-label': 'Trace of order ' + o.id}, 'trace')));
  }));
}

function renderStreaming(s) {
  $('streaming-error').textContent = s.error || '';
  const live = s.live || {};
  $('live-total').textContent = typeof live.total === 'number' ? String(live.total) : '—';
  const videos = Object.entries(live.videos || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  replaceRows($('live').tBodies[0], videos.length ? videos.map(([id, n]) =>
    h('tr', {'data-title': id}, h('th', {scope: 'row'}, id), h('td', {}, String(n)))) :
    [h('tr', {}, h('td', {colspan: 2, class: 'muted'}, 'Nobody is watching.'))]);
  const top = (s.top && s.top.items) || [];
  replaceRows($('top').tBodies[0], top.length ? top.map((t) =>
    h('tr', {'data-title': t.contentId}, h('th', {scope: 'row'}, t.contentId),
      h('td', {}, fixed(t.watchedSec / 60, 1) + ' min'), h('td', {}, String(t.viewers)))) :
    [h('tr', {}, h('td', {colspan: 3, class: 'muted'}, 'Nothing watched yet.'))]);
}

function renderBroker(b) {
  $('broker-error').textContent = b.error || '';
  $('storage').textContent = b.error ? '—' : bytes(b.storage) + (b.maxStorage > 0 ? ' of ' + bytes(b.maxStorage) : '');
  $('messages').textContent = b.error ? '—' : String(b.messages);
  replaceRows($('streams').tBodies[0], (b.streams || []).map((s) => {
    const parts = (s.consumers || []).map((c) => `${c.name}: ${c.pending} / ${c.ackPending}`);
    if (s.watchers) parts.push(`${s.watchers} watch${s.watchers === 1 ? '' : 'es'}`);
    const cons = parts.join(' · ');
    const backlog = (s.consumers || []).some((c) => c.pending > 0 || c.ackPending > 0);
    return h('tr', {'data-stream': s.name},
      h('th', {scope: 'row'}, s.name), h('td', {}, String(s.messages)), h('td', {}, bytes(s.bytes)),
      h('td', {class: backlog ? 'warn' : 'muted', title: cons}, cons || 'none'));
  }));
}

// --- traces ----------------------------------------------------------------

async function refreshTraces() {
  clearTimeout(traceTimer);
  if (!token) return;
  const list = await api('/console/api/traces?limit=15').catch(() => null);
  if (list && list.traces) {
    const pick = $('trace-pick');
    const keep = pick.value;
    pick.replaceChildren(h('option', {value: ''}, '—'), ...list.traces.map((t) =>
      h('option', {value: t.traceId}, `${clock(t.start)} ${t.rootName} · ${ms(t.durationMs)} · ${(t.services || []).join(', ')}`)));
    pick.value = list.traces.some((t) => t.traceId === keep) ? keep : '';
  }
  if (token) traceTimer = setTimeout(refreshTraces, 5000);
}

async function showTrace(id) {
  if (!id) return;
  shownTrace = id;
  $('trace-info').textContent = 'Loading trace ' + id + '…';
  const tr = await api('/console/api/traces/' + encodeURIComponent(id)).catch(() => null);
  if (shownTrace !== id) return;
  if (!tr || !tr.spans || !tr.spans.length) {
    $('trace-info').textContent = 'Trace ' + id + ' is in no service\'s buffer any more.';
    $('waterfall').replaceChildren();
    return;
  }
  renderWaterfall(tr);
}

async function showOrderTrace(orderId) {
  shownTrace = 'order:' + orderId;
  $('trace-info').textContent = 'Looking for the trace of order ' + orderId + '…';
  const list = await api('/console/api/traces?limit=1&orderId=' + encodeURIComponent(orderId)).catch(() => null);
  if (shownTrace !== 'order:' + orderId) return;
  if (!list || !list.traces || !list.traces.length) {
    $('trace-info').textContent = 'No recent trace names order ' + orderId + '.';
    $('waterfall').replaceChildren();
    return;
  }
  await showTrace(list.traces[0].traceId);
}

function isError(status) {
  if (!status) return false;
  if (typeof status === 'string') return /error/i.test(status);
  return /error/i.test(String(status.code || status.status || ''));
}

// renderWaterfall draws spans as bars on the trace's time line, children
// under their parent; a span whose parent is elsewhere starts a new root.
function renderWaterfall(tr) {
  const spans = tr.spans;
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) {
      if (!kids.has(s.parentSpanId)) kids.set(s.parentSpanId, []);
      kids.get(s.parentSpanId).push(s);
    } else {
      roots.push(s);
    }
  }
  const t0 = Math.min(...spans.map((s) => Date.parse(s.start)));
  const t1 = Math.max(...spans.map((s) => Date.parse(s.end)));
  const total = Math.max(t1 - t0, 0.001);
  const rows = [];
  const walk = (s, depth) => {
    const start = Date.parse(s.start) - t0;
    const dur = Math.max(Date.parse(s.end) - Date.parse(s.start), 0);
    const bar = h('span', {class: 'bar' + (isError(s.status) ? ' err' : '')});
    bar.style.left = (start / total * 100).toFixed(2) + '%';
    bar.style.width = (dur / total * 100).toFixed(2) + '%';
    const links = Array.isArray(s.links) && s.links.length ? h('span', {class: 'link'}, ' ← linked') : '';
    const li = h('li', {'data-span': s.name, 'data-service': s.service, title: `${s.service} · ${s.kind || ''} · ${s.name}`},
      h('span', {class: 'name'}, s.name, links), h('span', {class: 'svc'}, s.service),
      h('span', {class: 'track', 'aria-hidden': 'true'}, bar), h('span', {class: 'dur'}, ms(dur)));
    li.style.setProperty('--depth', String(depth));
    rows.push(li);
    for (const k of kids.get(s.spanId) || []) walk(k, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  const services = [...new Set(spans.map((s) => s.service))];
  $('trace-info').textContent = `Trace ${tr.traceId}: ${spans.length} spans across ${services.join(', ')}, ${ms(total)}.`;
  $('waterfall').replaceChildren(...rows);
}

function loadTraceFromHash() {
  const m = /^#(trace|order)=(.+)$/.exec(location.hash);
  if (!m || !token) return;
  const id = decodeURIComponent(m[2]);
  if (m[1] === 'trace') showTrace(id); else showOrderTrace(id);
  $('traces').scrollIntoView({block: 'nearest'});
}

// --- start -----------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('trace-pick').addEventListener('change', (e) => {
    if (e.target.value) location.hash = 'trace=' + encodeURIComponent(e.target.value);
  });
  window.addEventListener('hashchange', loadTraceFromHash);
  if (token) showBoard(); else showLogin('');
});
