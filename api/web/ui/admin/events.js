// #/admin/events: what happened in the cloud, newest first, filtered by
// level, type and text, a page at a time.

import { h, table, badge, fmtDate, pageHeader, pager, showError, debounce } from '../core/ui.js';
import { call } from '../core/api.js';
import { route } from '../core/router.js';
import { wrapTable } from './common.js';

const PAGE_SIZE = 25;
// INFO, WARN and ERROR have tones of their own in badge().
function levelBadge(level) {
  return badge(level || 'INFO');
}

// eventsHash builds the page's URL from its filter, so a filtered view can
// be bookmarked and the browser's back button works.
function eventsHash(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v && !(k === 'page' && Number(v) === 1)) q.set(k, v);
  const s = q.toString();
  return `#/admin/events${s ? `?${s}` : ''}`;
}

route('/admin/events', {
  title: 'Events',
  section: 'admin',
  nav: 'Events',
  adminOnly: true,
  async render(el, params, query) {
    const f = {
      level: query.get('level') || '',
      type: query.get('type') || '',
      keyword: query.get('keyword') || '',
      page: Math.max(1, Number(query.get('page')) || 1),
    };
    const level = h('select', { class: 'control', name: 'level', id: 'events-level' },
      [['', 'All levels'], ['INFO', 'Info'], ['WARN', 'Warning'], ['ERROR', 'Error']].map(([v, l]) => h('option', { value: v, selected: f.level === v }, l)));
    const type = h('input', { class: 'control', name: 'type', id: 'events-type', value: f.type, placeholder: 'e.g. VM.CREATE', list: 'event-types' });
    const keyword = h('input', { class: 'control search', type: 'search', name: 'keyword', id: 'events-keyword', value: f.keyword, placeholder: 'Words in the description' });
    const types = h('datalist', { id: 'event-types' });
    const listBox = h('div');
    // Filtering reloads the list in place (the hash follows, without a
    // navigation, so the focus stays in the filter being typed into).
    const apply = (change) => {
      Object.assign(f, change, { page: change.page || 1 });
      history.replaceState(null, '', eventsHash(f));
      load();
    };
    level.addEventListener('change', () => apply({ level: level.value }));
    type.addEventListener('change', () => apply({ type: type.value.trim().toUpperCase() }));
    keyword.addEventListener('input', debounce(() => apply({ keyword: keyword.value.trim() }), 500));
    const lab = (forId, text, control) => h('div', { class: 'field' }, h('label', { for: forId, class: 'field-label' }, text), control);
    el.replaceChildren(pageHeader('Events'),
      h('form', { class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); apply({ type: type.value.trim().toUpperCase(), keyword: keyword.value.trim() }); } },
        lab('events-level', 'Level', level), lab('events-type', 'Type', type), lab('events-keyword', 'Search', keyword), types,
        h('button', { type: 'submit', class: 'btn', 'data-action': 'filter' }, 'Apply'),
        h('button', { type: 'button', class: 'btn btn-ghost', 'data-action': 'clear-filter', onclick: () => {
          level.value = '';
          type.value = '';
          keyword.value = '';
          apply({ level: '', type: '', keyword: '' });
        } }, 'Clear')),
      listBox);

    let seq = 0;
    async function load() {
      const mine = ++seq;
      let r;
      try {
        r = await call('listEvents', { listall: true, level: f.level, type: f.type, keyword: f.keyword, page: f.page, pagesize: PAGE_SIZE });
      } catch (err) {
        if (mine !== seq) return;
        listBox.replaceChildren(h('p', { class: 'muted' }, 'The events could not be listed.'));
        showError(err);
        return;
      }
      if (mine !== seq) return;
      const rows = r.event || [];
      types.replaceChildren(...[...new Set(rows.map((e) => e.type))].sort().map((t) => h('option', { value: t })));
      const typeLink = (e) => h('button', {
        type: 'button', class: 'link-button mono', title: `Only ${e.type} events`,
        onclick: () => {
          type.value = e.type;
          apply({ type: e.type });
        },
      }, e.type);
      listBox.replaceChildren(
        wrapTable(table({
          name: 'events', rows, empty: f.level || f.type || f.keyword ? 'No event matches the filter.' : 'No events yet.',
          columns: [
            { key: 'created', label: 'Time', render: (e) => h('span', { class: 'nowrap' }, fmtDate(e.created)) },
            { key: 'level', label: 'Level', render: (e) => levelBadge(e.level) },
            { key: 'type', label: 'Type', render: typeLink },
            { key: 'description', label: 'Description', class: 'cell-wrap' },
            { key: 'resourcetype', label: 'Resource' },
            { key: 'account', label: 'By', render: (e) => `${e.username || e.account || ''}${e.domain ? ` (${e.domain})` : ''}` },
          ],
        })),
        pager({
          page: f.page, pagesize: PAGE_SIZE, count: r.count || 0,
          onPage: (n) => {
            apply({ page: n });
            el.querySelector('h1').focus();
          },
        }));
    }
    await load();
  },
});
