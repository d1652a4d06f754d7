// Shared pieces of the tenant views: a list page (search, filters, paging,
// live refresh) and async actions with progress and clear errors.

import { h, table, pager, field, showError, notify, jobProgress, loading, debounce, confirmAction, isTransitional, emptyState } from '../core/ui.js';
import { call, callAsync, itemKey } from '../core/api.js';

export const PAGE_SIZE = 20;

// newestPage answers page p of a list the server keeps oldest first, newest
// first: the items it needs from at most two of the server's pages.
async function newestPage(command, q, p) {
  const key = itemKey(command);
  const head = await call(command, { ...q, page: 1, pagesize: 1 });
  const count = head.count;
  const end = count - (p - 1) * PAGE_SIZE; // exclusive index, oldest-first order
  const start = Math.max(0, end - PAGE_SIZE);
  if (end <= 0) return { count, [key]: [] };
  const items = [];
  for (let sp = Math.floor(start / PAGE_SIZE) + 1; (sp - 1) * PAGE_SIZE < end; sp++) {
    const r = await call(command, { ...q, page: sp, pagesize: PAGE_SIZE });
    const from = (sp - 1) * PAGE_SIZE;
    r[key].forEach((x, i) => {
      if (from + i >= start && from + i < end) items.push(x);
    });
  }
  return { count, [key]: items.reverse() };
}

// transient reports whether an error may pass by itself (a node going
// away, an election): a background refresh then just tries again later.
export function transient(err) {
  return err && (err.status === 0 || (err.status >= 500 && err.status <= 504));
}

// listView renders a searchable, filterable, paged table of a list command
// into host and answers {reload()}. filters: [{name, label, options}].
export function listView(host, { name, command, params = () => ({}), columns, filters = [], search = true, onRow, rowId = (r) => r.id, empty, pollWhile, searchLabel = 'Search', searchHint = 'Name…', newestFirst = false, onLoad }) {
  const state = { page: 1, keyword: '', filter: {} };
  const tableBox = h('div', { class: 'table-wrap' }, loading());
  const pagerBox = h('div');
  const controls = [];
  if (search) {
    const s = field({ label: searchLabel, name: 'keyword', type: 'search', placeholder: searchHint });
    s.classList.add('search');
    s.control.addEventListener('input', debounce(() => {
      state.keyword = s.control.value.trim();
      state.page = 1;
      reload();
    }, 300));
    controls.push(s);
  }
  for (const f of filters) {
    const sel = field({ label: f.label, name: `filter-${f.name}`, type: 'select', options: [{ value: '', label: 'All' }, ...f.options] });
    sel.control.addEventListener('change', () => {
      state.filter[f.name] = sel.control.value;
      state.page = 1;
      reload();
    });
    controls.push(sel);
  }
  const refresh = h('button', { type: 'button', class: 'btn', 'data-action': 'refresh', onclick: () => reload() }, 'Refresh');
  host.replaceChildren(h('div', { class: 'toolbar' }, controls, h('div', { class: 'spacer' }), refresh), tableBox, pagerBox);

  function clearFilters() {
    state.keyword = '';
    state.filter = {};
    state.page = 1;
    for (const c of host.querySelectorAll('.toolbar input, .toolbar select')) c.value = '';
    reload();
  }

  let timer = null;
  let seq = 0;
  async function reload(background = false) {
    const my = ++seq;
    clearTimeout(timer);
    let r;
    try {
      const q = { ...params(), ...state.filter, keyword: state.keyword };
      r = newestFirst ? await newestPage(command, q, state.page) : await call(command, { ...q, page: state.page, pagesize: PAGE_SIZE });
    } catch (err) {
      if (my !== seq || !host.isConnected) return;
      if (background && transient(err)) {
        timer = setTimeout(() => host.isConnected && reload(true), 5000);
        return;
      }
      tableBox.replaceChildren(h('div', { class: 'empty' }, h('p', {}, 'The list could not be loaded.'),
        h('button', { type: 'button', class: 'btn', onclick: () => reload() }, 'Retry')));
      showError(err);
      return;
    }
    if (my !== seq || !host.isConnected) return;
    const rows = r[itemKey(command)];
    if (rows.length === 0 && state.page > 1) {
      state.page -= 1;
      reload();
      return;
    }
    const filtered = state.keyword || Object.values(state.filter).some(Boolean);
    // Keep the keyboard focus on the same row across a refresh.
    const active = document.activeElement;
    const focusRow = tableBox.contains(active) ? active.closest('tr[data-id]') : null;
    const focusId = focusRow ? focusRow.dataset.id : null;
    const focusIdx = focusRow ? [focusRow, ...focusRow.querySelectorAll('a, button')].indexOf(active) : -1;
    const none = filtered ? emptyState('Nothing matches the search or filters.', h('button', { type: 'button', class: 'btn', 'data-action': 'clear-filters', onclick: clearFilters }, 'Clear search and filters')) : empty;
    tableBox.replaceChildren(table({ name, columns, rows, onRow, rowId, empty: none }));
    if (focusId !== null) {
      const tr = [...tableBox.querySelectorAll('tr[data-id]')].find((x) => x.dataset.id === focusId);
      const target = tr && [tr, ...tr.querySelectorAll('a, button')][Math.max(0, focusIdx)];
      if (target) target.focus();
    }
    pagerBox.replaceChildren(r.count > PAGE_SIZE || state.page > 1 ? pager({ page: state.page, pagesize: PAGE_SIZE, count: r.count, onPage: (p) => { state.page = p; reload(); } }) : h('div', { class: 'pager' }, h('span', { class: 'pager-info' }, `${r.count} item${r.count === 1 ? '' : 's'}`)));
    if (onLoad) onLoad(r, { ...state.filter });
    const busy = pollWhile ? pollWhile(rows) : rows.some((x) => isTransitional(x.state));
    const tick = () => {
      if (!host.isConnected) return;
      if (busy || document.visibilityState === 'visible') reload(true);
      else timer = setTimeout(tick, 15000);
    };
    timer = setTimeout(tick, busy ? 2000 : 15000);
  }
  // setFilter picks a filter's value as if the user chose it in its select.
  function setFilter(fname, value) {
    state.filter[fname] = value;
    state.page = 1;
    const c = host.querySelector(`.toolbar [name="filter-${fname}"]`);
    if (c) c.value = value;
    reload();
  }

  reload();
  return { reload: () => reload(), setFilter, stop: () => clearTimeout(timer) };
}

// runJob runs an async command with its progress in box (a container of
// job progress bars), shows the error in words if it fails and answers the
// job result, or undefined on failure.
export async function runJob(box, label, command, params, { success, confirm } = {}) {
  if (confirm && !(await confirmAction(confirm))) return undefined;
  const slot = h('div');
  box.prepend(slot);
  const jp = jobProgress(slot, label);
  try {
    const res = await callAsync(command, params, (p) => jp.update(p));
    jp.done(res);
    if (success) notify(success);
    setTimeout(() => slot.remove(), 6000);
    return res || {};
  } catch (err) {
    // The message area says what went wrong; the job's box goes.
    slot.remove();
    showError(err);
    return undefined;
  }
}

// runSync runs a sync command with the button busy meanwhile.
export async function runSync(btn, command, params, { success, confirm } = {}) {
  if (confirm && !(await confirmAction(confirm))) return undefined;
  const old = btn ? btn.textContent : '';
  if (btn) {
    btn.disabled = true;
    btn.textContent = `${old}…`;
  }
  try {
    const r = await call(command, params);
    if (success) notify(success);
    return r;
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (btn) {
      btn.disabled = false;
      btn.textContent = old;
    }
  }
}

export function link(href, text, sub) {
  return [h('a', { href, class: 'cell-name' }, text), sub ? h('span', { class: 'cell-sub' }, sub) : null];
}

// utf8ToBase64 encodes text for CloudStack's base64 userdata.
export function utf8ToBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function base64ToUtf8(b64) {
  try {
    const bin = atob(b64);
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return b64;
  }
}

export async function zoneOptions() {
  try {
    const r = await call('listZones');
    return r.zone.map((z) => ({ value: z.id, label: z.name }));
  } catch (err) {
    showError(err);
    return [];
  }
}
