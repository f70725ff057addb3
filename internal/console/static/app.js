// The console: every figure comes from the manager's HTTP API
// (docs/http-api.md), called with the tab's bearer token when there is one.
// Event data is only ever put in the page as text (textContent), never as HTML.

const TOKEN_KEY = 'eventsourcing-console-token';
const REFRESH_MS = 3000;
const DEAD_LETTER_PAGE = 1000;
const DEAD_LETTER_MAX = 10000;

const $ = (id) => document.getElementById(id);

// el builds an element; strings and numbers among children become text nodes.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// ---- state in the URL, so that every view can be linked ----

function params() { return new URLSearchParams(location.search); }
function namespace() { return params().get('namespace') || 'default'; }
function view() {
  const v = params().get('view');
  return ['overview', 'events', 'readmodels', 'deadletters'].includes(v) ? v : 'overview';
}

// link is the console's URL for a view of the current namespace.
function link(v, extra = {}) {
  const p = new URLSearchParams({ namespace: namespace(), view: v });
  for (const [k, val] of Object.entries(extra)) if (val !== undefined && val !== '') p.set(k, val);
  return '?' + p.toString();
}

function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  render();
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// nsPath is an API path of the current namespace. A browser drops "." and
// ".." path segments, written %2E too (WHATWG URL), so a key "." would be
// sent as another path and answer for something else: it is refused here.
function nsPath(...segments) {
  const dots = segments.find((s) => s === '.' || s === '..');
  if (dots !== undefined) {
    throw new Error(`A browser cannot send the name "${dots}" in a URL path (it drops "." and ".." segments, ` +
      'even written %2E); query it with curl and %2E instead.');
  }
  return '/v1/namespaces/' + encodeURIComponent(namespace()) + '/' +
    segments.map((s) => encodeURIComponent(s)).join('/');
}

// exactNumbers keeps a number that JSON.parse would change (an integer
// beyond 2^53, 1.50) as its source text, so a payload shows as it was
// posted; the API's own positions stay numbers, for the pages' arithmetic.
const POSITIONS = new Set(['sequence', 'version', 'position', 'next']);
function exactNumbers(key, value, ctx) {
  return typeof value === 'number' && !POSITIONS.has(key) && ctx?.source !== undefined &&
    String(value) !== ctx.source && JSON.rawJSON ? JSON.rawJSON(ctx.source) : value;
}

// api calls the HTTP API and gives its JSON answer (exact: numbers as
// exactNumbers keeps them); an error answer is an ApiError carrying its
// problem document. A 401 asks for a token.
async function api(path, { method = 'GET', body, exact = false } = {}) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit', cache: 'no-store',
  });
  const text = await res.text();
  let data = {};
  try { data = text ? JSON.parse(text, exact ? exactNumbers : undefined) : {}; } catch { data = { detail: text }; }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401) askForToken(`The API answered 401 Unauthorized: ${err.message}`);
    throw err;
  }
  return data;
}

function showError(err) {
  const box = $('error');
  if (!err) {
    if (!box.hidden) { box.hidden = true; box.textContent = ''; }
    return;
  }
  let msg = err.message || String(err);
  if (err.status) msg = `${err.status} ${err.problem.title || ''}: ${msg}`;
  if (err.status === 401) msg += ' (Set token to send one.)';
  else if (err.status === 403) msg += ' (This token is not allowed to; Change token to use another.)';
  // An alert is read out at each change: a refresh that fails the same way
  // again leaves it as it is.
  if (box.hidden || box.textContent !== msg) {
    box.textContent = msg;
    box.hidden = false;
  }
}

// ---- the token ----

// declined is set when the user closes the prompt without a token: later
// 401s then show their error without asking again, until Set token.
let declined = false;

function askForToken(reason, asked = false) {
  const dialog = $('token-dialog');
  if (dialog.open || (declined && !asked)) return;
  $('token-dialog-reason').textContent = reason || '';
  $('token-input').value = '';
  dialog.returnValue = '';
  dialog.showModal();
}

function updateTokenButtons() {
  const has = !!sessionStorage.getItem(TOKEN_KEY);
  $('token-button').textContent = has ? 'Change token' : 'Set token';
  $('forget-token-button').hidden = !has;
}

function setupToken() {
  $('token-form').addEventListener('submit', () => {
    // A header value: a pasted "Bearer " prefix and whitespace are dropped.
    const t = $('token-input').value.replace(/^\s*bearer\s+/i, '').replace(/\s+/g, '');
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $('token-input').value = '';
    declined = false;
    updateTokenButtons();
    render();
  });
  // Cancel, Escape: the dialog closes without the submit button's value.
  $('token-dialog').addEventListener('close', () => {
    if ($('token-dialog').returnValue !== 'use') declined = true;
  });
  $('token-cancel').addEventListener('click', () => $('token-dialog').close());
  $('token-button').addEventListener('click', () => askForToken('', true));
  $('forget-token-button').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    updateTokenButtons();
    render();
  });
  updateTokenButtons();
}

// ---- formatting ----

function fmtNumber(n) {
  if (typeof n !== 'number') return n === undefined || n === null ? '–' : String(n);
  return Number.isInteger(n) ? n.toLocaleString('en') : n.toLocaleString('en', { maximumFractionDigits: 1 });
}

function isReady(r) { return r === true || r === 'True' || r === 'true'; }

function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
}

function json(v) { return JSON.stringify(v, null, 2); }

// count says "1 stream", "2 streams".
function count(n, noun) { return `${fmtNumber(n)} ${noun}${n === 1 ? '' : 's'}`; }

// ---- overview ----

let refreshTimer = null;
// refreshGen and viewGen number the refresh chains and the view renders: an
// answer that comes back after a newer one started is dropped, so a slow
// request never paints over a newer view or doubles the polling.
let refreshGen = 0;
let viewGen = 0;
let lists = { streams: [], projections: [], reactors: [] };
let lastSummary = '';
// listsLoading is set while the overview's lists are being fetched.
let listsLoading = false;

function cell(text, cls) { return el('td', { class: cls }, text); }

function nameCell(text, href) { return el('th', { scope: 'row' }, el('a', { href }, text)); }

function emptyRow(tbody, cols, text) {
  tbody.replaceChildren(el('tr', {}, el('td', { colspan: cols, class: 'muted' }, text)));
}

// readyCell shows a handler's readiness; a standby replica does not know it
// (its figures come from the replica that leads).
function readyCell(h) {
  if (h.ready === null || h.ready === undefined) {
    return el('td', { class: 'muted' }, h.standby ? 'unknown (standby replica)' : 'unknown');
  }
  const ok = isReady(h.ready);
  return el('td', {}, el('span', { class: ok ? 'ok' : 'warn' }, ok ? 'Ready' : 'Not ready'));
}

// figureCell shows a handler's count; null is one only the replica that
// leads knows.
function figureCell(n) {
  return n === null || n === undefined ? cell('unknown', 'num muted') : cell(fmtNumber(n), 'num');
}

function deadCell(n, kind, name) {
  if (!n) return figureCell(n);
  const handler = kind === 'reactor' ? `reactor:${namespace()}/${name}` : `${namespace()}/${name}`;
  return el('td', { class: 'num' }, el('a', { href: link('deadletters', { handler }), class: 'warn' }, fmtNumber(n)));
}

function renderOverview() {
  const { streams, projections, reactors } = lists;
  const st = $('streams-table').tBodies[0];
  if (streams.length === 0) emptyRow(st, 4, 'No streams in this namespace.');
  else st.replaceChildren(...streams.map((s) => el('tr', { 'data-name': s.name },
    nameCell(s.name, link('events', { stream: s.name })),
    cell(fmtNumber(s.lastSequence), 'num'), cell(fmtNumber(s.subscribers), 'num'),
    cell(fmtNumber(s.eventsPerSecond), 'num'))));
  const pt = $('projections-table').tBodies[0];
  if (projections.length === 0) emptyRow(pt, 5, 'No projections in this namespace.');
  else pt.replaceChildren(...projections.map((p) => el('tr', { 'data-name': p.name },
    nameCell(p.name, link('readmodels', { projection: p.name })), readyCell(p),
    figureCell(p.eventsProcessed), figureCell(p.lag),
    deadCell(p.deadLettered, 'projection', p.name))));
  const rt = $('reactors-table').tBodies[0];
  if (reactors.length === 0) emptyRow(rt, 5, 'No reactors in this namespace.');
  else rt.replaceChildren(...reactors.map((r) => el('tr', { 'data-name': r.name },
    el('th', { scope: 'row' }, r.name), readyCell(r),
    figureCell(r.eventsDelivered), figureCell(r.lag),
    deadCell(r.deadLettered, 'reactor', r.name))));
  // The live region changes only when the summary does, not at every refresh.
  const handlers = [...projections, ...reactors];
  const dead = handlers.reduce((n, h) => n + (h.deadLettered || 0), 0);
  const deadKnown = handlers.every((h) => h.deadLettered !== null && h.deadLettered !== undefined);
  const summary = `${count(streams.length, 'stream')}, ${count(projections.length, 'projection')}, ` +
    `${count(reactors.length, 'reactor')}, ` +
    (deadKnown ? `${fmtNumber(dead)} dead lettered` : 'dead letters unknown (a standby replica answered)');
  if (summary !== lastSummary) { $('overview-summary').textContent = summary; lastSummary = summary; }
  $('overview-updated').textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
}

function fillDatalists() {
  $('stream-names').replaceChildren(...lists.streams.map((s) => el('option', { value: s.name })));
  $('projection-names').replaceChildren(...lists.projections.map((p) => el('option', { value: p.name })));
}

async function loadLists() {
  const [s, p, r] = await Promise.all([
    api(nsPath('streams')), api(nsPath('projections')), api(nsPath('reactors'))]);
  const byName = (a, b) => a.name.localeCompare(b.name);
  lists = {
    streams: (s.items || []).sort(byName),
    projections: (p.items || []).sort(byName),
    reactors: (r.items || []).sort(byName),
  };
  fillDatalists();
}

// refresh polls the lists every few seconds while the overview is shown
// (and the tab visible); one request set at a time.
async function refresh() {
  clearTimeout(refreshTimer);
  const gen = ++refreshGen;
  if (view() !== 'overview') return;
  if (!document.hidden && !$('token-dialog').open) {
    listsLoading = true;
    try {
      await loadLists();
      if (gen !== refreshGen) return;
      renderOverview();
      showError(null);
    } catch (err) {
      if (gen !== refreshGen) return;
      showError(err);
    } finally {
      if (gen === refreshGen) listsLoading = false;
    }
  }
  if (gen === refreshGen && view() === 'overview') refreshTimer = setTimeout(refresh, REFRESH_MS);
}

// ---- events ----

// pages holds the `after` of each page shown so far, for Previous page.
let eventPages = { query: '', afters: [0], next: 0 };

function eventsQuery() {
  const p = params();
  return { stream: p.get('stream') || '', key: p.get('key') || '', name: p.get('name') || '',
    limit: p.get('limit') || '50', after: Number(p.get('after') || 0) };
}

async function renderEvents() {
  const q = eventsQuery();
  $('events-stream').value = q.stream;
  $('events-key').value = q.key;
  $('events-name').value = q.name;
  $('events-limit').value = q.limit;
  const table = $('events-table');
  if (!q.stream) {
    table.hidden = true;
    $('events-status').textContent = 'Choose a stream.';
    setPager(false, false);
    loadLists().catch(() => {});
    return;
  }
  const queryID = JSON.stringify([namespace(), q.stream, q.key, q.name, q.limit]);
  if (eventPages.query !== queryID) eventPages = { query: queryID, afters: [0], next: 0 };
  // One event more than the page says whether there is a next page, so the
  // last page does not offer an empty one (the API allows 1000 at most).
  const limit = Number(q.limit);
  const ask = limit < 1000 ? limit + 1 : limit;
  const sp = new URLSearchParams({ after: String(q.after), limit: String(ask) });
  if (q.name && !q.key) sp.set('name', q.name);
  $('events-status').textContent = 'Loading…';
  const gen = viewGen;
  let page;
  try {
    const path = q.key ? nsPath('streams', q.stream, 'keys', q.key, 'events') : nsPath('streams', q.stream, 'events');
    page = await api(path + '?' + sp.toString(), { exact: true });
    if (gen !== viewGen) return;
    showError(null);
  } catch (err) {
    if (gen !== viewGen) return;
    showError(err);
    $('events-status').textContent = '';
    table.hidden = true;
    return;
  }
  const read = page.events || [];
  const beyond = read.length > limit;
  let events = beyond ? read.slice(0, limit) : read;
  const last = events[events.length - 1];
  // A key read takes no name filter (docs/http-api.md): filter its page here.
  if (q.name && q.key) events = events.filter((e) => e.name === q.name);
  // A full page (of a name filter too) stops at its last event: the next
  // starts after the last one shown.
  eventPages.next = beyond ? (q.key ? last.version : last.sequence) : (page.next ?? q.after);
  const idx = eventPages.afters.indexOf(q.after);
  if (idx === -1) eventPages.afters.push(q.after);
  else eventPages.afters.length = idx + 1;
  $('events-position-heading').textContent = q.key ? 'Version' : 'Sequence';
  $('events-caption').textContent = `Stream ${q.stream}` + (q.key ? `, key ${q.key}` : '') +
    (q.name ? `, events named ${q.name}` : '') + `, after ${q.key ? 'version' : 'sequence'} ${q.after}` +
    (q.key && page.version !== undefined ? ` (the key is at version ${page.version})` : '');
  const tbody = table.tBodies[0];
  if (events.length === 0) emptyRow(tbody, 6, 'No events on this page.');
  else tbody.replaceChildren(...events.map((e) => el('tr', {},
    cell(fmtNumber(q.key ? e.version : e.sequence), 'num'), cell(fmtTime(e.time), 'nowrap'), cell(e.name),
    cell(e.key ?? '', 'key'), cell(e.id, 'id'),
    el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: (ev) => openEvent(e, q.stream, ev.currentTarget),
      'aria-label': `Open event ${q.key ? e.version : e.sequence}` }, 'Open')))));
  table.hidden = false;
  $('events-status').textContent = `${count(events.length, 'event')}.`;
  // Past the extra event there is a next page; a name-filtered read may
  // move on without finding any.
  const more = beyond || (ask === limit && read.length >= limit) || (q.name && !q.key && eventPages.next !== q.after);
  setPager(eventPages.afters.length > 1, more);
}

function setPager(back, next) {
  const focused = document.activeElement;
  $('events-first').disabled = !back;
  $('events-previous').disabled = !back;
  $('events-next').disabled = !next;
  // A disabled button loses the focus to the page's top: the pager keeps it.
  if (focused?.disabled && focused.closest('.pager')) {
    (['events-previous', 'events-next'].map($).find((b) => !b.disabled) ?? $('main')).focus();
  }
}

function goEventsPage(after) {
  const q = eventsQuery();
  navigate(link('events', { stream: q.stream, key: q.key, name: q.name, limit: q.limit, after: after || undefined }));
}

// detailOpener is the button that opened the event shown: closing the
// event gives it the focus back.
let detailOpener = null;

// openEvent shows one event whole: its fields, headers and formatted payload.
function openEvent(e, stream, opener) {
  detailOpener = opener || null;
  const fields = $('event-detail-fields');
  const rows = [['Stream', stream], ['Id', e.id], ['Name', e.name], ['Sequence', e.sequence],
    ['Key', e.key], ['Version', e.version], ['Position', e.position], ['Time', fmtTime(e.time)],
    ['Correlation id', e.correlationId], ['Causation id', e.causationId], ['Content type', e.contentType]];
  fields.replaceChildren(...rows.filter(([, v]) => v !== undefined && v !== '')
    .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
  const headers = Object.entries(e.headers || {}).sort(([a], [b]) => a.localeCompare(b));
  $('event-detail-headers').replaceChildren(...(headers.length ? headers.flatMap(([k, v]) =>
    [el('dt', {}, k), el('dd', {}, v)]) : [el('dd', { class: 'muted' }, 'none')]));
  $('event-detail-payload').textContent = e.payload === null && e.payloadBase64
    ? `(does not decode with the stream's schema; its bytes in base64)\n${e.payloadBase64}` : json(e.payload);
  $('event-detail-heading').textContent = `Event ${e.name} (${e.key ? 'version ' + e.version + ' of ' + e.key : 'sequence ' + e.sequence})`;
  $('event-detail').hidden = false;
  $('event-detail-heading').focus();
}

function closeEvent() {
  $('event-detail').hidden = true;
  const opener = detailOpener;
  detailOpener = null;
  if (opener?.isConnected) opener.focus();
  else $('main').focus();
}

// ---- read models ----

async function renderReadModels() {
  const p = params();
  const projection = p.get('projection') || '';
  const key = p.get('pkey') || '';
  $('readmodel-projection').value = projection;
  $('readmodel-key').value = key;
  const out = $('readmodel-result');
  if (!projection) {
    out.hidden = true;
    $('readmodel-status').textContent = 'Choose a projection, and a key or none for the whole read model.';
    loadLists().catch(() => {});
    return;
  }
  $('readmodel-status').textContent = 'Loading…';
  const gen = viewGen;
  try {
    const doc = await api(key ? nsPath('projections', projection, 'keys', key) : nsPath('projections', projection), { exact: true });
    if (gen !== viewGen) return;
    showError(null);
    $('readmodel-status').textContent = key ? `Projection ${projection}, key ${key}:` : `Projection ${projection}, the whole read model:`;
    out.textContent = json(doc);
    out.hidden = false;
  } catch (err) {
    if (gen !== viewGen) return;
    out.hidden = true;
    if (err.status === 404 && key) {
      showError(null);
      $('readmodel-status').textContent = err.message;
    } else {
      showError(err);
      $('readmodel-status').textContent = '';
    }
  }
}

// ---- dead letters ----

const H = {
  handler: 'x-dead-letter-handler', error: 'x-dead-letter-error', stream: 'x-dead-letter-stream',
  attempts: 'x-dead-letter-attempts', eventID: 'x-dead-letter-event-id', sequence: 'x-dead-letter-sequence',
  key: 'x-dead-letter-key', redrives: 'x-dead-letter-redrives',
};

// handlerOf names a dead letter's handler: a projection "ns/name" or a
// reactor "reactor:ns/name" (docs/dead-letters.md).
function handlerOf(h) {
  const kind = h.startsWith('reactor:') ? 'reactor' : 'projection';
  const full = kind === 'reactor' ? h.slice('reactor:'.length) : h;
  const name = full.includes('/') ? full.slice(full.indexOf('/') + 1) : full;
  return { id: h, kind, name, label: `${kind} ${name}` };
}

async function readDeadLetters(stream) {
  const all = [];
  let after = 0;
  for (;;) {
    const page = await api(nsPath('streams', stream, 'events') + `?after=${after}&limit=${DEAD_LETTER_PAGE}`, { exact: true });
    const events = page.events || [];
    all.push(...events);
    if (events.length < DEAD_LETTER_PAGE || all.length >= DEAD_LETTER_MAX || page.next === after) break;
    after = page.next;
  }
  return all;
}

async function renderDeadLetters() {
  const p = params();
  const stream = p.get('dlq') || 'dead';
  const only = p.get('handler') || '';
  $('deadletters-stream').value = stream;
  const status = $('deadletters-status');
  const groups = $('deadletters-groups');
  const gen = viewGen;
  let letters;
  try {
    letters = await readDeadLetters(stream);
    if (gen !== viewGen) return;
    showError(null);
  } catch (err) {
    if (gen !== viewGen) return;
    groups.replaceChildren();
    if (err.status === 404) {
      showError(null);
      status.textContent = `No dead-letter stream ${stream} in this namespace: no Stream names it.`;
    } else { showError(err); }
    return;
  }
  const byHandler = new Map();
  for (const e of letters) {
    const h = (e.headers || {})[H.handler] || '(unknown handler)';
    if (!byHandler.has(h)) byHandler.set(h, []);
    byHandler.get(h).push(e);
  }
  const select = $('deadletters-handler');
  const handlers = [...byHandler.keys()].sort();
  if (only && !byHandler.has(only)) handlers.push(only);
  select.replaceChildren(el('option', { value: '' }, 'All handlers'),
    ...handlers.map((h) => el('option', { value: h }, `${handlerOf(h).label} (${byHandler.get(h)?.length ?? 0})`)));
  select.value = only;
  const shown = handlers.filter((h) => !only || h === only);
  groups.replaceChildren(...shown.map((h, i) => deadLetterGroup(h, byHandler.get(h) || [], i)));
  if (!status.dataset.keep) {
    status.textContent = letters.length === 0 ? `No dead letters in ${stream}.`
      : `${count(letters.length, 'dead letter')} in ${stream}` + (letters.length >= DEAD_LETTER_MAX ? ' (the first ones only)' : '') + '.';
  }
  delete status.dataset.keep;
}

// redrivenHere holds the dead letters (by their own id) redriven from this
// tab, with when: the dead-letter stream is a log and keeps them, and which
// were redriven is recorded beside the handler, out of the API's sight.
const redrivenHere = new Map();

// deadLetterGroup is the i-th handler's section; its heading names the table.
function deadLetterGroup(h, letters, i) {
  const handler = handlerOf(h);
  const headingID = `dl-group-${i}`;
  const redrivable = h.startsWith('reactor:') || h.includes('/');
  return el('section', { class: 'dl-group', 'aria-labelledby': headingID, 'data-handler': h },
    el('h3', { id: headingID, tabindex: -1 }, `${handler.label}: ${count(letters.length, 'dead letter')}`),
    redrivable ? el('button', { type: 'button', onclick: () => redrive(handler, undefined, letters) },
      `Redrive all of ${handler.label}`) : null,
    el('div', { class: 'table-wrap' }, el('table', { 'aria-labelledby': headingID },
      el('thead', {}, el('tr', {}, ...['Time', 'From', 'Event', 'Key', 'Reason', 'Attempts', 'Redrives']
        .map((t) => el('th', { scope: 'col' }, t)), el('th', { scope: 'col' }, el('span', { class: 'visually-hidden' }, 'Actions')))),
      el('tbody', {}, ...letters.map((e) => {
        const hd = e.headers || {};
        return el('tr', {},
          cell(fmtTime(e.time), 'nowrap'), cell(`${hd[H.stream] || ''} #${hd[H.sequence] || '?'}`), cell(e.name),
          cell(hd[H.key] || '', 'key'), cell(hd[H.error] || '', 'reason'), cell(hd[H.attempts] || '', 'num'),
          cell(hd[H.redrives] || '0', 'num'),
          el('td', { class: 'actions' },
            el('button', { type: 'button', class: 'secondary', onclick: (ev) => openEvent(e, $('deadletters-stream').value, ev.currentTarget),
              'aria-label': `Open dead letter of event ${hd[H.eventID] || e.id}` }, 'Open'),
            redrivable && hd[H.eventID] ? el('button', { type: 'button', class: 'secondary',
              onclick: () => redrive(handler, [hd[H.eventID]], [e]),
              'aria-label': `Redrive event ${hd[H.eventID]}` }, 'Redrive') : null,
            redrivenHere.has(e.id) ? el('span', { class: 'muted redriven' }, `redriven at ${redrivenHere.get(e.id)}`) : null));
      })))));
}

async function redrive(handler, ids, rows) {
  const status = $('deadletters-status');
  const path = nsPath(handler.kind === 'reactor' ? 'reactors' : 'projections', handler.name, 'redrive');
  status.textContent = `Redriving for ${handler.label}…`;
  try {
    const res = await api(path, { method: 'POST', body: ids ? { ids } : {} });
    showError(null);
    const at = new Date().toLocaleTimeString('en-GB');
    for (const e of rows) redrivenHere.set(e.id, at);
    status.textContent = `Redriven: ${count(res.redriven, 'dead letter')} of ${handler.label}. ` +
      'The overview shows how they were handled; one that fails again appears here again.';
    status.dataset.keep = '1';
    await renderDeadLetters();
    // The new list replaced the button that had the focus: the handler's
    // heading takes it, so the keyboard goes on from there.
    const group = [...$('deadletters-groups').children].find((g) => g.dataset.handler === handler.id);
    (group?.querySelector('h3') ?? $('main')).focus();
  } catch (err) {
    status.textContent = `Redrive of ${handler.label} failed.`;
    showError(err);
  }
}

// The detail panel of an event lives in the events view; dead letters open
// it there too, so it is moved next to whichever view is shown.
function placeDetail(v) {
  const detail = $('event-detail');
  const host = v === 'deadletters' ? $('view-deadletters') : $('view-events');
  if (detail.parentElement !== host) host.append(detail);
}

// ---- views ----

function render() {
  const v = view();
  const ns = namespace();
  document.title = `${ns} · eventsourcing console`;
  $('namespace-input').value = ns;
  for (const a of document.querySelectorAll('nav a[data-view]')) {
    a.href = link(a.dataset.view);
    if (a.dataset.view === v) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  for (const name of ['overview', 'events', 'readmodels', 'deadletters']) $('view-' + name).hidden = name !== v;
  $('event-detail').hidden = true;
  placeDetail(v);
  showError(null);
  viewGen++;
  if (v === 'overview') refresh();
  else {
    clearTimeout(refreshTimer);
    refreshGen++;
    if (v === 'events') renderEvents();
    else if (v === 'readmodels') renderReadModels();
    else renderDeadLetters();
  }
}

function setup() {
  setupToken();
  // Links within the console change the view without reloading the page.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[href^="?"]');
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    navigate(a.getAttribute('href'));
    $('main').focus();
  });
  window.addEventListener('popstate', render);
  // Back in sight, the overview refreshes at once, unless a refresh is on its way.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && view() === 'overview' && !listsLoading) refresh();
  });
  $('namespace-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ namespace: $('namespace-input').value.trim(), view: view() });
    navigate('?' + p.toString());
  });
  $('events-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    navigate(link('events', { stream: $('events-stream').value.trim(), key: $('events-key').value,
      name: $('events-name').value.trim(), limit: $('events-limit').value }));
  });
  $('events-first').addEventListener('click', () => goEventsPage(0));
  $('events-previous').addEventListener('click', () => {
    const a = eventPages.afters;
    goEventsPage(a.length > 1 ? a[a.length - 2] : 0);
  });
  $('events-next').addEventListener('click', () => goEventsPage(eventPages.next));
  $('event-detail-close').addEventListener('click', closeEvent);
  $('event-detail').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { ev.preventDefault(); closeEvent(); }
  });
  $('readmodel-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    navigate(link('readmodels', { projection: $('readmodel-projection').value.trim(), pkey: $('readmodel-key').value }));
  });
  $('deadletters-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    navigate(link('deadletters', { dlq: $('deadletters-stream').value.trim(), handler: $('deadletters-handler').value }));
  });
  $('deadletters-handler').addEventListener('change', () => {
    navigate(link('deadletters', { dlq: $('deadletters-stream').value.trim(), handler: $('deadletters-handler').value }), true);
  });
  render();
}

setup();
