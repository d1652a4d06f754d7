// #/admin/cluster: the management servers (raft role, versions, indexes),
// the leader and term, and whether the next server may be upgraded now.
// Refreshes every 2 s; when a server or the leader goes away it keeps the
// last good figures, says so, and picks up again by itself.

import { h, table, badge, fmtDate, parseDate, pageHeader, keepFocus } from '../core/ui.js';
import { call } from '../core/api.js';
import { route } from '../core/router.js';
import { rootOnly, poll, wrapTable, ago, refresher } from './common.js';

const REFRESH_MS = 2000;

// sinceCollection says how long before the server's collection time a date
// was, so the browser's clock does not matter.
function since(date, collected) {
  if (!date) return 'not reached';
  const at = collected ? parseDate(collected) : NaN;
  return ago(date, Number.isNaN(at) ? Date.now() : at);
}

function indexCell(m) {
  if (m.appliedindex === undefined) return h('span', { class: 'muted', title: m.statuserror || '' }, 'unknown');
  return h('span', { class: 'index' }, String(m.appliedindex),
    m.lag ? h('span', { class: `cell-sub${m.lag > 256 ? ' lag-bad' : ''}` }, `${m.lag} behind the leader`) : null);
}

function stat(label, field, value, sub) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value', 'data-field': field }, value), sub ? h('div', { class: 'stat-sub' }, sub) : null);
}

route('/admin/cluster', {
  title: 'Management cluster',
  section: 'admin',
  nav: 'Cluster',
  adminOnly: true,
  rootOnly: true,
  async render(el) {
    if (!rootOnly(el, 'Management cluster')) return;
    const updated = h('span', { class: 'updated muted', 'data-field': 'updated' });
    const refresh = h('button', { type: 'button', class: 'btn', 'data-action': 'refresh' }, 'Refresh');
    const notice = h('div', { class: 'refresh-notice', 'data-field': 'notice' });
    const stats = h('div', { class: 'stats' });
    const upgrade = h('div', { class: 'upgrade' });
    const listBox = h('div');
    el.replaceChildren(pageHeader('Management cluster', updated, refresh),
      h('p', { class: 'page-sub' }, 'The Stratus servers that replicate the cloud\'s state through Raft. Each server\'s role and indexes are its own, read from it during each refresh.'),
      notice, stats, h('section', { class: 'card upgrade-card' }, h('h2', { class: 'card-title' }, 'Upgrade readiness'), upgrade),
      h('section', { class: 'card card-flush' }, h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Servers')), listBox));

    const draw = (rows) => {
      const any = rows[0] || {};
      const up = rows.filter((m) => m.state === 'Up').length;
      const self = rows.find((m) => m.name === any.answeredby) || {};
      const leader = rows.find((m) => m.name === any.clusterleader);
      stats.replaceChildren(
        stat('Leader', 'leader', any.clusterleader || 'none', any.clusterleader ? (leader && leader.state !== 'Up' ? 'not reachable' : 'elected') : 'an election is under way'),
        stat('Term', 'term', String(any.clusterterm ?? '')),
        stat('Servers up', 'serversup', `${up} of ${rows.length}`, `${rows.filter((m) => m.voter).length} voters`),
        stat('Commit index', 'commitindex', self.commitindex !== undefined ? String(self.commitindex) : '—', `applied ${self.appliedindex ?? '—'} on ${any.answeredby || '?'}`),
        stat('Newest build', 'versions', any.newestversion || '', `commands v${any.clustercommandversion ?? '?'}`),
        stat('Answered by', 'answeredby', any.answeredby || ''));

      const reasons = any.upgradereasons || [];
      const order = any.upgradeorder || [];
      upgrade.replaceChildren(...[
        h('div', { class: `verdict ${any.upgradesafe ? 'verdict-ok' : 'verdict-bad'}`, 'data-field': 'upgrade', 'data-safe': any.upgradesafe ? 'true' : 'false' },
          any.upgradesafe ? (any.upgradenext ? `Safe: upgrade ${any.upgradenext} next.` : 'Safe: every server runs the newest build.') : 'Not safe to stop a server now.'),
        reasons.length ? h('ul', { class: 'reasons', 'data-field': 'upgradereasons' }, reasons.map((r) => h('li', {}, r))) : null,
        order.length ? h('p', { class: 'muted' }, `Order: ${order.join(', ')} (followers first, the leader last: transfer leadership away before stopping it).`) : null,
        (any.upgraded || []).length ? h('p', { class: 'muted' }, `Already on ${any.newestversion}: ${any.upgraded.join(', ')}.`) : null,
        h('p', { class: 'muted small' }, 'The same verdict as ', h('code', {}, 'stratus operator upgrade-check'), '.')].filter(Boolean));

      const notes = rows.filter((m) => m.statuserror || m.gossip !== 'alive');
      keepFocus(listBox, () => listBox.replaceChildren(h('div', {}, wrapTable(table({
        name: 'managementservers', rows,
        empty: 'No servers in the raft configuration: the cluster is not bootstrapped.',
        columns: [
          { key: 'name', label: 'Server', class: 'cell-name' },
          { key: 'state', label: 'State', render: (m) => badge(m.state) },
          { key: 'raftrole', label: 'Raft role', render: (m) => badge(m.raftrole) },
          { key: 'voter', label: 'Voter', render: (m) => (m.voter ? 'yes' : 'no') },
          { key: 'version', label: 'Version', render: (m) => h('span', { title: `command version ${m.commandversion ?? '?'}` }, m.version || '?') },
          { key: 'appliedindex', label: 'Applied', sortValue: (m) => m.appliedindex ?? -1, render: indexCell },
          { key: 'commitindex', label: 'Commit', render: (m) => (m.commitindex ?? '—') },
          { key: 'term', label: 'Term', render: (m) => (m.term ?? '—') },
          { key: 'lastcontact', label: 'Last contact', render: (m) => h('span', { title: m.lastcontact ? fmtDate(m.lastcontact) : '' }, m.indexsource === 'self' ? 'answering' : since(m.lastcontact, m.collectiontime)) },
        ],
      })), notes.length ? h('ul', { class: 'server-notes', 'aria-label': 'Servers that could not be read' }, notes.map((m) => h('li', {},
        h('strong', {}, m.name), ` (${m.serviceip || 'no address'}, gossip ${m.gossip || 'unknown'}): `, m.statuserror || 'its status was read, but gossip does not report it alive'))) : null)));
    };

    const tick = refresher({
      load: async () => (await call('listManagementServersMetrics', { consistency: 'stale' })).managementserver || [],
      draw, notice,
      ok: () => {
        el.classList.remove('stale');
        updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      },
      failed: () => el.classList.add('stale'),
    });
    await tick();
    const p = poll(tick, REFRESH_MS, { first: REFRESH_MS });
    refresh.addEventListener('click', () => p.now());
  },
});
