// DOM building blocks of the console. Everything is built with h(), so API
// text always ends up in text nodes and attribute values, never in markup.

const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'readOnly', 'multiple', 'indeterminate']);
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'poster']);

// safeURL lets through the console's own links (#/..., /ui/...), http(s)
// and mailto links; anything else (javascript:, data:, vbscript:, a
// protocol-relative //host) from API data becomes a dead '#'.
export function safeURL(v) {
  const u = String(v).trim();
  if (/^#/.test(u) || /^\/(?![\/\\])/.test(u) || /^(https?|mailto):/i.test(u)) return u;
  return '#';
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  if (attrs === null || typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') {
      el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    } else if (k.startsWith('on')) {
      // Handlers are functions, never text to evaluate (the CSP refuses it anyway).
      if (typeof v !== 'function') throw new Error(`h(): ${k} must be a function`);
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (URL_ATTRS.has(k)) {
      el.setAttribute(k, safeURL(v));
    } else if (PROPS.has(k)) {
      el[k] = v;
    } else if (k === 'for') {
      el.htmlFor = v;
    } else if (k === 'style') {
      throw new Error('h(): inline styles are refused by the CSP; use a class');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === true) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

let uid = 0;
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

// ---- formatting ----

// parseDate reads an API date (CloudStack writes 2026-01-02T03:04:05+0000,
// an offset without a colon, which not every browser's Date accepts) and
// answers milliseconds since the epoch, NaN when it is no date.
export function parseDate(s) {
  if (s === undefined || s === null || s === '') return NaN;
  if (typeof s === 'number') return s;
  return new Date(String(s).replace(/([+-]\d\d)(\d\d)$/, '$1:$2')).getTime();
}

export function fmtDate(s) {
  if (!s) return '';
  const d = new Date(parseDate(s));
  if (Number.isNaN(d.getTime())) return String(s);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtBytes(n) {
  n = Number(n);
  if (!Number.isFinite(n) || n < 0) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function fmtMiB(mib) {
  return fmtBytes(Number(mib) * 1024 * 1024);
}

// ---- state badges ----

// Every state the API answers has a tone (fsm's VM, volume, snapshot,
// host, resource, HA, pool, template download, job, event level and
// management-server states, gossip and raft roles, CloudStack's extra
// ones); TestConsoleBadgeTones checks the Go constants against this list.
const TONES = {
  ok: ['Running', 'Up', 'Enabled', 'Ready', 'BackedUp', 'Active', 'Succeeded', 'Connected', 'Implemented', 'Leader', 'Healthy',
    'Alive', 'Available', 'Completed', 'DOWNLOADED', 'Download Complete', 'On', 'Managed', 'Uploaded', 'Primary'],
  off: ['Stopped', 'Maintenance', 'Disabled', 'Allocated', 'Expunged', 'Inactive', 'Follower', 'Unknown', 'Ineligible',
    'NOT_DOWNLOADED', 'Off', 'Removed', 'Left', 'Shutdown', 'INFO', 'Scheduled', 'Unmanaged'],
  warn: ['Degraded', 'Suspect', 'WARN', 'Partial'],
  bad: ['Error', 'Down', 'Alert', 'Failed', 'Disconnected', 'ErrorInMaintenance', 'Destroyed', 'Destroy', 'Locked', 'Fenced',
    'Unreachable', 'Dead', 'DOWNLOAD_ERROR', 'ABANDONED', 'Unhealthy'],
  busy: ['Starting', 'Stopping', 'Migrating', 'Creating', 'PrepareForMaintenance', 'Pending', 'Expunging', 'Destroying',
    'Rebooting', 'Resizing', 'Uploading', 'BackingUp', 'Connecting', 'Copying', 'Restoring', 'Reverting', 'Candidate',
    'Fencing', 'DOWNLOAD_IN_PROGRESS', 'Downloading', 'Started', 'Snapshotting', 'Rebalancing', 'Recovering', 'Scaling'],
};
const TONE_OF = {};
for (const [tone, states] of Object.entries(TONES)) for (const s of states) TONE_OF[s.toLowerCase()] = tone;

export function stateTone(state) {
  return TONE_OF[String(state || '').toLowerCase()] || 'neutral';
}

export function isTransitional(state) {
  return stateTone(state) === 'busy';
}

export function badge(state) {
  const s = state === undefined || state === null || state === '' ? 'Unknown' : String(state);
  return h('span', { class: `badge badge-${stateTone(s)}`, 'data-state': s }, s);
}

// ---- tables ----

// The sort the user picked per table name, so that a page that redraws
// its table every few seconds (hosts, cluster) keeps it.
const SORTS = new Map();
// Columns that hold a date (fmtDate): they may break between day and time.
const DATE_KEYS = new Set(['created', 'completed', 'lastpinged', 'removed', 'disconnected']);

export function table({ name, columns, rows, rowId = (r) => r.id, onRow, empty = 'Nothing here yet.', caption }) {
  const tbody = h('tbody');
  let sortKey = null;
  let dir = 1;
  const ths = columns.map((c) => {
    if (c.sortable === false) return h('th', { scope: 'col' }, c.label);
    const btn = h('button', { type: 'button', class: 'th-sort', onclick: () => sortBy(c, th, true) }, c.label, h('span', { class: 'sort-icon', 'aria-hidden': 'true' }));
    const th = h('th', { scope: 'col', 'aria-sort': 'none' }, btn);
    return th;
  });
  const tbl = h('table', { class: 'table', 'data-table': name },
    caption ? h('caption', { class: 'sr-only' }, caption) : null,
    h('thead', {}, h('tr', {}, ths)), tbody);

  function cell(c, r) {
    const v = c.render ? c.render(r) : r[c.key];
    return h('td', { 'data-field': c.key, class: [c.class, DATE_KEYS.has(c.key) ? 'cell-date' : null] }, v === undefined || v === null ? '' : v);
  }

  function fill(list) {
    tbody.replaceChildren();
    if (!list || list.length === 0) {
      tbody.appendChild(h('tr', { class: 'empty-row' }, h('td', { colspan: columns.length }, empty instanceof Node ? empty : emptyState(empty))));
      return;
    }
    for (const r of list) {
      const tr = h('tr', { 'data-id': rowId(r) ?? '' }, columns.map((c) => cell(c, r)));
      if (onRow) {
        tr.classList.add('clickable');
        tr.tabIndex = 0;
        tr.addEventListener('click', (e) => {
          if (e.target.closest('a, button, input, select, label')) return;
          onRow(r);
        });
        tr.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' && e.target === tr) onRow(r);
        });
      }
      tbody.appendChild(tr);
    }
  }

  function sortBy(c, th, user) {
    if (user) {
      dir = sortKey === c.key ? -dir : 1;
      sortKey = c.key;
      if (name) SORTS.set(name, { key: sortKey, dir });
    }
    for (const t of ths) t.setAttribute('aria-sort', 'none');
    th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
    const val = (r) => (c.sortValue ? c.sortValue(r) : r[c.key]);
    const sorted = [...(rows || [])].sort((a, b) => {
      const x = val(a);
      const y = val(b);
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
      return String(x ?? '').localeCompare(String(y ?? ''), undefined, { numeric: true }) * dir;
    });
    fill(sorted);
  }

  const again = name && SORTS.get(name);
  const i = again ? columns.findIndex((c) => c.key === again.key && c.sortable !== false) : -1;
  if (i >= 0) {
    sortKey = again.key;
    dir = again.dir;
    sortBy(columns[i], ths[i], false);
  } else {
    fill(rows);
  }
  return tbl;
}

export function pager({ page, pagesize, count, onPage }) {
  const pages = Math.max(1, Math.ceil((count || 0) / pagesize));
  const from = count ? (page - 1) * pagesize + 1 : 0;
  const to = Math.min(count || 0, page * pagesize);
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('span', { class: 'pager-info' }, count ? `${from}–${to} of ${count}` : 'No items'),
    h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'prev-page', disabled: page <= 1, onclick: () => onPage(page - 1) }, '‹ Previous'),
    h('span', { class: 'pager-page' }, `Page ${page} of ${pages}`),
    h('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'next-page', disabled: page >= pages, onclick: () => onPage(page + 1) }, 'Next ›'));
}

export function capacityBar(used, total, label) {
  used = Number(used) || 0;
  total = Number(total) || 0;
  const pct = total > 0 ? Math.min(100, (used / total) * 100) : 0;
  const fill = h('div', { class: `meter-fill ${pct >= 90 ? 'meter-bad' : pct >= 75 ? 'meter-warn' : 'meter-ok'}` });
  fill.style.width = `${pct.toFixed(1)}%`;
  return h('div', {
    class: 'meter', role: 'meter', 'aria-label': label, 'aria-valuenow': used, 'aria-valuemin': 0, 'aria-valuemax': total,
    'aria-valuetext': `${Math.round(pct)}%`, title: `${label}: ${Math.round(pct)}%`,
  }, fill);
}

// keepFocus runs redraw(), which rebuilds part of root, and puts the
// keyboard focus back on the same row, tree node or button if it was in
// root: a page that refreshes itself must not throw a keyboard user out.
export function keepFocus(root, redraw) {
  const a = document.activeElement;
  if (!a || a === document.body || !root.contains(a)) return redraw();
  const row = a.closest('tr[data-id]');
  const keyOf = (x) => ['data-node', 'data-action', 'data-tab', 'name', 'id'].map((k) => x.getAttribute(k)).join('|');
  const want = { row: row ? row.dataset.id : null, key: keyOf(a), onRow: row === a };
  const out = redraw();
  const scope = want.row !== null ? [...root.querySelectorAll('tr[data-id]')].find((x) => x.dataset.id === want.row) : root;
  if (scope) {
    const again = want.onRow ? scope : [...scope.querySelectorAll('a, button, input, select, textarea, [tabindex]')].find((x) => keyOf(x) === want.key);
    if (again) again.focus({ preventScroll: true });
  }
  return out;
}

// ---- page furniture ----

export function emptyState(text, action) {
  return h('div', { class: 'empty' }, h('div', { class: 'empty-icon', 'aria-hidden': 'true' }), h('p', {}, text), action || null);
}

export function loading(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status', 'aria-live': 'polite' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, title), h('div', { class: 'page-actions' }, actions));
}

export function card(title, ...body) {
  return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title' }, title) : null, body);
}

// kv renders a definition list of [label, value, field?] rows.
export function kv(rows) {
  return h('dl', { class: 'kv' }, rows.filter(Boolean).map(([k, v, f]) => [
    h('dt', {}, k), h('dd', f ? { 'data-field': f } : {}, v === undefined || v === null || v === '' ? '—' : v)]));
}

export function button(label, { action, kind = '', onclick, disabled, title, type = 'button' } = {}) {
  return h('button', { type, class: `btn ${kind ? `btn-${kind}` : ''}`.trim(), 'data-action': action, onclick, disabled, title }, label);
}

// ---- messages ----

const HINTS = {
  0: 'The server did not answer. Check the network or the load balancer; reads are retried once automatically.',
  401: 'Your session is not valid any more: sign in again.',
  405: 'The request used the wrong HTTP method.',
  431: 'Correct what the message names, then try again.',
  432: 'This command is not available to your account.',
  503: 'The cluster is choosing a new leader: wait a few seconds and retry.',
  530: 'The server hit an unexpected error; retry, and tell the operator if it persists.',
  531: 'Your account is not allowed to do this.',
  532: 'A resource limit of your account was reached: free some resources or ask for a higher limit.',
  533: 'No host or storage has room for this: pick a smaller offering or ask the operator for capacity.',
  534: 'A resource it needs is down or unreachable: retry later.',
  535: 'Allocating a resource failed: retry, or pick different options.',
  536: 'It is still in use: detach or remove what uses it first.',
  537: 'It is in a state that does not allow this: wait for it to settle and retry.',
};

export function errorHint(err) {
  if (err && err.command === 'login' && err.errorcode === 531) return 'Check the username, the password and the domain (empty means ROOT).';
  return HINTS[err && (err.errorcode ?? err.status)] || '';
}

function messageArea() {
  let area = document.getElementById('messages');
  if (!area) {
    area = h('div', { id: 'messages', class: 'messages' });
    document.body.prepend(area);
  }
  return area;
}

export function showError(err, where) {
  const text = (err && (err.text || err.message)) || String(err);
  const meta = [];
  if (err && err.command) meta.push(`command ${err.command}`);
  if (err && err.errorcode) meta.push(`error ${err.errorcode}`);
  const hint = errorHint(err);
  const el = h('div', { class: 'alert alert-error', role: 'alert' },
    h('div', { class: 'alert-body' },
      h('strong', { class: 'alert-text' }, text),
      meta.length ? h('span', { class: 'alert-meta' }, ` (${meta.join(', ')})`) : null,
      hint ? h('div', { class: 'alert-hint' }, hint) : null),
    h('button', { type: 'button', class: 'alert-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
  const area = where || messageArea();
  if (!where) {
    // Keep the message area short: the newest few errors only.
    while (area.children.length >= 3) area.firstElementChild.remove();
  }
  area.appendChild(el);
  return el;
}

export function clearMessages() {
  const area = document.getElementById('messages');
  if (area) area.replaceChildren();
}

export function notify(text, kind = 'ok') {
  let region = document.getElementById('toasts');
  if (!region) {
    region = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' });
    document.body.appendChild(region);
  }
  const el = h('div', { class: `toast toast-${kind}`, role: 'status' }, text);
  region.appendChild(el);
  setTimeout(() => el.remove(), 6000);
  return el;
}

// openModal shows a dialog (role=dialog, focus trapped, Escape cancels)
// and answers {close(value)}; done(value) is called once when it closes.
function openModal({ title, body, done, onEnter }) {
  const before = document.activeElement;
  const tid = nextId('dlg');
  const dlg = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': tid }, h('h2', { id: tid, class: 'modal-title' }, title), body);
  const backdrop = h('div', { class: 'modal-backdrop' }, dlg);
  let open = true;
  const close = (v) => {
    if (!open) return;
    open = false;
    backdrop.remove();
    document.removeEventListener('keydown', onKey, true);
    // Back where the user was; if that control is gone, to the page heading.
    const back = before && before.isConnected && before !== document.body ? before : document.querySelector('.page h1');
    if (back && back.focus) back.focus();
    done(v);
  };
  const onKey = (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      close(null);
    } else if (e.key === 'Enter' && onEnter) {
      e.preventDefault();
      onEnter(e);
    } else if (e.key === 'Tab') {
      const f = [...dlg.querySelectorAll('input, select, textarea, button')].filter((x) => !x.disabled && x.getClientRects().length);
      const i = f.indexOf(document.activeElement);
      e.preventDefault();
      if (f.length) f[(i + (e.shiftKey ? f.length - 1 : 1) + f.length) % f.length].focus();
    }
  };
  backdrop.addEventListener('mousedown', (e) => {
    if (e.target === backdrop) close(null);
  });
  document.addEventListener('keydown', onKey, true);
  document.body.appendChild(backdrop);
  return { close, dlg };
}

// confirmAction shows a modal and answers true when the user confirms.
// text may be a string or {title, text, confirm, danger}.
export function confirmAction(opts) {
  const o = typeof opts === 'string' ? { text: opts } : opts;
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: `btn ${o.danger === false ? 'btn-primary' : 'btn-danger'}`, 'data-action': 'confirm' }, o.confirm || 'Confirm');
    const cancel = h('button', { type: 'button', class: 'btn', 'data-action': 'cancel' }, 'Cancel');
    const m = openModal({
      title: o.title || 'Please confirm',
      body: [h('p', { class: 'modal-text' }, o.text || ''), h('div', { class: 'modal-actions' }, cancel, ok)],
      done: (v) => resolve(v === true),
      onEnter: () => m.close(document.activeElement !== cancel),
    });
    ok.addEventListener('click', () => m.close(true));
    cancel.addEventListener('click', () => m.close(false));
    ok.focus();
  });
}

// jobProgress renders an async job's progress into el.
export function jobProgress(el, label = 'Working') {
  const bar = h('div', { class: 'progress-fill' });
  const status = h('span', { class: 'job-status' }, `${label}: submitting…`);
  const box = h('div', { class: 'job', 'data-job': '', 'data-jobstatus': 'submitting', role: 'status', 'aria-live': 'polite' },
    h('div', { class: 'progress progress-indeterminate' }, bar), status);
  el.replaceChildren(box);
  const started = Date.now();
  return {
    el: box,
    update(p) {
      if (p.jobid) box.dataset.job = p.jobid;
      box.dataset.jobstatus = 'running';
      const secs = Math.round((Date.now() - started) / 1000);
      const step = p.jobprocstatus ? `, step ${p.jobprocstatus}` : '';
      status.textContent = `${label}: running${step} (${secs} s)${p.jobid ? ` — job ${p.jobid}` : ''}`;
    },
    done(result, text) {
      box.dataset.jobstatus = 'done';
      box.firstElementChild.className = 'progress progress-done';
      status.textContent = text || `${label}: done in ${Math.max(1, Math.round((Date.now() - started) / 1000))} s`;
      return result;
    },
    fail(err) {
      box.dataset.jobstatus = 'failed';
      box.firstElementChild.className = 'progress progress-failed';
      box.setAttribute('role', 'alert');
      const hint = errorHint(err);
      status.textContent = `${label} failed: ${(err && (err.text || err.message)) || err}${hint ? ` — ${hint}` : ''}`;
    },
  };
}

// ---- forms ----

export function field({ label, name, type = 'text', options, required, value, help, placeholder, min, max, step, pattern, rows, disabled, autocomplete, id }) {
  const cid = id || nextId(`fld-${name}`);
  const errId = `${cid}-err`;
  const helpId = help ? `${cid}-help` : null;
  const describedBy = [helpId, errId].filter(Boolean).join(' ');
  let control;
  const common = { id: cid, name, required, disabled, 'aria-describedby': describedBy, class: 'control' };
  if (type === 'select') {
    control = h('select', common, (options || []).map((o) => {
      const opt = typeof o === 'object' ? o : { value: o, label: o };
      return h('option', { value: opt.value, disabled: opt.disabled, selected: value !== undefined && String(value) === String(opt.value) }, opt.label ?? opt.value);
    }));
  } else if (type === 'textarea') {
    control = h('textarea', { ...common, rows: rows || 4, placeholder });
    if (value !== undefined) control.value = value;
  } else if (type === 'checkbox') {
    control = h('input', { ...common, type, checked: !!value, class: 'checkbox' });
  } else {
    control = h('input', { ...common, type, placeholder, min, max, step, pattern, autocomplete });
    if (value !== undefined && value !== null) control.value = value;
  }
  control.addEventListener('input', () => setFieldError(control, ''));
  control.addEventListener('change', () => setFieldError(control, ''));
  const lab = h('label', { for: cid, class: 'field-label' }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
  const wrap = h('div', { class: `field field-${type}` },
    type === 'checkbox' ? h('div', { class: 'check-row' }, control, lab) : [lab, control],
    help ? h('div', { class: 'field-help', id: helpId }, help) : null,
    h('div', { class: 'field-error', id: errId, 'aria-live': 'polite' }));
  wrap.control = control;
  return wrap;
}

export function setFieldError(control, text) {
  const wrap = control.closest('.field');
  const err = wrap && wrap.querySelector('.field-error');
  if (err) err.textContent = text || '';
  if (text) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

// validate checks a form's controls (required, min/max, pattern and the
// optional check(values) → {name: message}) and shows the messages inline;
// it focuses the first bad control and answers whether all is well.
export function validate(form, check) {
  let first = null;
  const bad = (c, text) => {
    setFieldError(c, text);
    if (!first) first = c;
  };
  for (const c of form.querySelectorAll('input[name], select[name], textarea[name]')) {
    setFieldError(c, '');
    if (c.disabled) continue;
    if (!c.checkValidity()) {
      const v = c.validity;
      const lab = (c.closest('.field')?.querySelector('.field-label')?.firstChild?.textContent || c.name).trim();
      if (v.valueMissing) bad(c, `${lab} is required.`);
      else if (v.rangeUnderflow) bad(c, `${lab} must be at least ${c.min}.`);
      else if (v.rangeOverflow) bad(c, `${lab} must be at most ${c.max}.`);
      else if (v.patternMismatch) bad(c, c.title || `${lab} has the wrong format.`);
      else bad(c, c.validationMessage);
    }
  }
  if (check) {
    for (const [name, text] of Object.entries(check(formValues(form)) || {})) {
      const c = form.querySelector(`[name="${name}"]`);
      if (c && text) bad(c, text);
    }
  }
  if (first) first.focus();
  return !first;
}

export function formValues(form) {
  const out = {};
  for (const c of form.querySelectorAll('input[name], select[name], textarea[name]')) {
    if (c.disabled) continue;
    // Passwords are taken as typed: a space may be part of one.
    out[c.name] = c.type === 'checkbox' ? c.checked : c.type === 'password' ? c.value : c.value.trim();
  }
  return out;
}

// debounce for search boxes.
export function debounce(fn, ms = 300) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

// formDialog shows a modal form built from field() specs and answers its
// values when submitted (after inline validation), or null when cancelled.
// check(values) may answer {name: message} for more validation.
export function formDialog({ title, text, fields, submit = 'Save', check, danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, 'data-action': 'confirm' }, submit);
    const cancel = h('button', { type: 'button', class: 'btn', 'data-action': 'cancel' }, 'Cancel');
    const form = h('form', { novalidate: true }, text ? h('p', { class: 'modal-text' }, text) : null, fields.map((f) => field(f)), h('div', { class: 'modal-actions' }, cancel, ok));
    const m = openModal({ title, body: form, done: resolve });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (validate(form, check)) m.close(formValues(form));
    });
    cancel.addEventListener('click', () => m.close(null));
    (form.querySelector('input:not([type=checkbox]), select, textarea') || ok).focus();
  });
}
