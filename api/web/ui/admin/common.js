// Helpers shared by the operator views: root-admin gate, polling that stops
// when the page is left, async actions with progress, modal forms, tabs.

import { h, jobProgress, showError, notify, field, validate, formValues, nextId, capacityBar, parseDate } from '../core/ui.js';
import { call, callAsync, session } from '../core/api.js';
import { onLeave } from '../core/router.js';

// The operator pages' style sheet, added once (the CSP allows 'self').
if (!document.querySelector('link[data-admin-css]')) {
  document.head.appendChild(h('link', { rel: 'stylesheet', href: '/ui/admin/admin.css', 'data-admin-css': '' }));
}

// rootOnly renders a notice and answers false when the caller is not a root admin.
export function rootOnly(el, title) {
  const s = session();
  if (s && s.isRootAdmin) return true;
  el.replaceChildren(h('h1', { tabindex: '-1' }, title),
    h('div', { class: 'alert alert-warn', role: 'alert' }, 'Only root administrators can open this page: it shows and changes the whole cloud.'),
    h('p', {}, 'Your domain\'s ', h('a', { href: '#/admin/accounts' }, 'accounts'), ', ', h('a', { href: '#/admin/events' }, 'events'), ' and ',
      h('a', { href: '#/vms' }, 'virtual machines'), ' are open to you.'));
  return false;
}

// poll runs fn after first ms (default at once) and then every ms (never
// two at once), until the page is left. fn may return a number to change
// the next delay. Answers {now(): run at once, stop()}.
export function poll(fn, ms, { first = 0 } = {}) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    let next = ms;
    try {
      const r = await fn();
      if (typeof r === 'number') next = r;
    } catch (err) {
      // fn shows its own errors; a throw here must not end the polling.
    } finally {
      running = false;
    }
    if (stopped) return;
    if (again) {
      again = false;
      next = 0;
    }
    timer = setTimeout(tick, next);
  };
  const ctl = {
    now() {
      if (stopped) return;
      if (timer) clearTimeout(timer);
      tick();
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
  onLeave(() => ctl.stop());
  timer = setTimeout(tick, first);
  return ctl;
}

// runJob runs an async command with a progress box in area; it answers the
// job's result, or null after showing the error (in the box and the page's
// message area).
export async function runJob(area, label, command, params, { done } = {}) {
  const slot = h('div', { class: 'job-slot' });
  area.prepend(slot);
  const jp = jobProgress(slot, label);
  try {
    const res = await callAsync(command, params, (p) => jp.update(p));
    jp.done(res, done ? done(res) : undefined);
    notify(done ? done(res) : `${label}: done.`);
    setTimeout(() => slot.remove(), 15000);
    return res || {};
  } catch (err) {
    jp.fail(err);
    showError(err);
    return null;
  }
}

// jobsArea is the place on a page where running jobs show their progress.
export function jobsArea() {
  return h('div', { class: 'jobs-inline', 'aria-label': 'Running tasks' });
}

// formModal shows a modal with fields (specs for field()); onSubmit(values)
// runs on submit and closes the dialog when it answers without throwing.
// An ApiError is shown inside the dialog. check(values) → {name: message}
// adds checks of its own. Answers a promise of onSubmit's result or null.
export function formModal({ title, intro, fields, submit = 'Save', action, check, onSubmit, wide }) {
  const before = document.activeElement;
  return new Promise((resolve) => {
    const tid = nextId('dlg');
    const alerts = h('div', { class: 'modal-alerts' });
    const controls = fields.map((f) => (f instanceof Node ? f : field(f)));
    const ok = h('button', { type: 'submit', class: 'btn btn-primary', 'data-action': action || 'submit' }, submit);
    const cancel = h('button', { type: 'button', class: 'btn', 'data-action': 'cancel' }, 'Cancel');
    const form = h('form', { class: 'modal-form', novalidate: true },
      alerts, h('div', { class: 'modal-fields' }, controls), h('div', { class: 'modal-actions' }, cancel, ok));
    const dlg = h('div', { class: `modal${wide ? ' modal-wide' : ''}`, role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': tid },
      h('h2', { id: tid, class: 'modal-title' }, title), intro ? h('p', { class: 'modal-text' }, intro) : null, form);
    const backdrop = h('div', { class: 'modal-backdrop' }, dlg);
    let busy = false;
    const close = (v) => {
      backdrop.remove();
      document.removeEventListener('keydown', onKey, true);
      if (before && before.focus && document.contains(before)) before.focus();
      resolve(v);
    };
    const focusables = () => [...dlg.querySelectorAll('input, select, textarea, button')].filter((x) => !x.disabled && x.offsetParent !== null);
    const onKey = (e) => {
      if (e.key === 'Escape' && !busy) {
        e.preventDefault();
        close(null);
      } else if (e.key === 'Tab') {
        const f = focusables();
        if (!f.length) return;
        const i = f.indexOf(document.activeElement);
        if (e.shiftKey && (i <= 0)) {
          e.preventDefault();
          f[f.length - 1].focus();
        } else if (!e.shiftKey && i === f.length - 1) {
          e.preventDefault();
          f[0].focus();
        }
      }
    };
    cancel.addEventListener('click', () => !busy && close(null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (busy) return;
      alerts.replaceChildren();
      if (!validate(form, check)) return;
      busy = true;
      ok.disabled = true;
      ok.textContent = 'Working…';
      try {
        const r = await onSubmit(formValues(form), form);
        close(r === undefined ? true : r);
      } catch (err) {
        showError(err, alerts);
        busy = false;
        ok.disabled = false;
        ok.textContent = submit;
      }
    });
    document.addEventListener('keydown', onKey, true);
    document.body.appendChild(backdrop);
    // Leaving the page (a link, the back button) closes the dialog.
    onLeave(() => document.contains(backdrop) && close(null));
    const first = form.querySelector('input, select, textarea');
    (first || ok).focus();
  });
}

// tabs renders a tab list; panels are built lazily by render(key, panel).
export function tabs(items, render, initial) {
  const list = h('div', { class: 'tabs', role: 'tablist' });
  const panel = h('div', { class: 'tab-panel', role: 'tabpanel', tabindex: '-1' });
  const btns = items.map(({ key, label }) => {
    const b = h('button', { type: 'button', class: 'tab', role: 'tab', id: `tab-${key}`, 'data-tab': key, 'aria-selected': 'false', tabindex: '-1' }, label);
    b.addEventListener('click', () => select(key));
    b.addEventListener('keydown', (e) => {
      const i = items.findIndex((x) => x.key === key);
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        e.preventDefault();
        const n = items[(i + (e.key === 'ArrowRight' ? 1 : items.length - 1)) % items.length].key;
        select(n);
        btns.find((x) => x.dataset.tab === n).focus();
      }
    });
    return b;
  });
  list.append(...btns);
  function select(key) {
    for (const b of btns) {
      const on = b.dataset.tab === key;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
    }
    panel.setAttribute('aria-labelledby', `tab-${key}`);
    panel.replaceChildren();
    render(key, panel);
  }
  select(initial || items[0].key);
  return { el: h('div', { class: 'tabset' }, list, panel), select };
}

// usage is a labelled capacity bar with the figures beside it; compact
// (for table cells) keeps the label for screen readers only.
export function usage(label, used, total, fmt = String, { compact = false } = {}) {
  const pct = Number(total) > 0 ? Math.round((Number(used) / Number(total)) * 100) : 0;
  return h('div', { class: `usage${compact ? ' usage-compact' : ''}` },
    h('div', { class: 'usage-head' }, h('span', { class: compact ? 'sr-only' : 'usage-label' }, label),
      h('span', { class: 'usage-figures' }, `${fmt(used)} / ${fmt(total)}`, h('span', { class: 'usage-pct' }, ` ${pct}%`))),
    capacityBar(used, total, label));
}

export function fmtMHz(n) {
  n = Number(n) || 0;
  return n >= 1000 ? `${(n / 1000).toFixed(n % 1000 === 0 ? 0 : 1)} GHz` : `${n} MHz`;
}

// ago says how long ago an API date was, in words.
export function ago(s, now = Date.now()) {
  if (!s) return 'never';
  const t = parseDate(s);
  if (Number.isNaN(t)) return String(s);
  const secs = Math.max(0, Math.round((now - t) / 1000));
  if (secs < 2) return 'just now';
  if (secs < 90) return `${secs} s ago`;
  if (secs < 5400) return `${Math.round(secs / 60)} min ago`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} days ago`;
}

// wrapTable puts a table in the bordered, scrollable frame.
export function wrapTable(t) {
  return h('div', { class: 'table-wrap' }, t);
}

// updated is a small "updated at" line for pages that refresh themselves.
export function updatedLine() {
  const el = h('span', { class: 'updated muted', 'aria-live': 'off' });
  return {
    el,
    mark() {
      el.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    },
  };
}

// staleNotice says, without replacing the page, that a refresh failed and
// the figures shown are the last good ones.
export function staleNotice(err, lastAt, what = 'figures') {
  const secs = Math.max(0, Math.round((Date.now() - lastAt) / 1000));
  const direct = err && err.status === 0;
  return h('div', { class: 'alert alert-warn', role: 'status', 'data-stale': 'true' },
    h('div', { class: 'alert-body' },
      h('strong', {}, 'Cannot refresh right now: '), (err && (err.text || err.message)) || 'no answer', '. ',
      `Showing the ${what} of ${secs} s ago and retrying by itself.`,
      direct ? h('div', { class: 'alert-hint' }, 'If this console talks to a single server that went away, open it through the load balancer or another server.') : null));
}

// refresher makes the tick of a page that refreshes itself: load() then
// draw(data). Once a load has worked, a failing one keeps the page as it
// is and says so in notice (staleNotice); the first load's error is thrown
// for the router to show with a Retry. ok() and failed(err) are optional.
export function refresher({ load, draw, notice, what, updated, ok, failed }) {
  let have = false;
  let lastAt = Date.now();
  return async () => {
    let data;
    try {
      data = await load();
    } catch (err) {
      if (!have) throw err;
      notice.replaceChildren(staleNotice(err, lastAt, what));
      if (failed) failed(err);
      return;
    }
    have = true;
    lastAt = Date.now();
    notice.replaceChildren();
    draw(data);
    if (updated) updated.mark();
    if (ok) ok();
  };
}

// tell runs a sync command, says text when it worked and shows the API's
// error when not; it answers whether it worked.
export async function tell(command, params, text) {
  try {
    await call(command, params);
    notify(text);
    return true;
  } catch (err) {
    showError(err);
    return false;
  }
}
