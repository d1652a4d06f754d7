// #/admin/infra: the infrastructure tree (zones, pods, clusters) with
// capacity bars, and the hosts of the selected branch with their states.

import { h, table, badge, fmtBytes, pageHeader, card, emptyState, loading, keepFocus } from '../core/ui.js';
import { call, listAll } from '../core/api.js';
import { route, go } from '../core/router.js';
import { rootOnly, poll, usage, fmtMHz, wrapTable, updatedLine, refresher } from './common.js';

// The tree's expansion and selection outlive a refresh and a visit elsewhere.
const view = { open: new Set(), sel: { kind: 'all', id: '' }, openedOnce: false };

const CAPACITY_NAMES = { 0: 'Memory', 1: 'CPU', 2: 'Primary storage', 3: 'Primary storage allocated', 6: 'Secondary storage' };

export function hostCPU(hst) {
  return { used: Number(hst.cpuallocatedvalue) || 0, total: Number(hst.cpuwithoverprovisioning) || (Number(hst.cpunumber) * Number(hst.cpuspeed)) || 0 };
}

export function hostMemory(hst) {
  return { used: Number(hst.memoryallocatedbytes ?? hst.memoryallocated) || 0, total: Number(hst.memorywithoverprovisioning) || Number(hst.memorytotal) || 0 };
}

function sum(hosts, f) {
  return hosts.reduce((a, x) => {
    const v = f(x);
    return { used: a.used + v.used, total: a.total + v.total };
  }, { used: 0, total: 0 });
}

export function haCell(hst) {
  const ha = hst.hostha || {};
  if (!ha.haenable) return h('span', { class: 'muted' }, ha.haprovider ? `Off (${ha.haprovider})` : 'Off');
  return h('span', { class: 'ha-cell' }, badge(ha.hastate || 'Unknown'), h('span', { class: 'cell-sub' }, ha.haprovider || ''));
}

export function hostColumns({ where = true } = {}) {
  return [
    { key: 'name', label: 'Host', render: (x) => h('a', { href: `#/admin/hosts/${encodeURIComponent(x.id)}`, class: 'cell-name', title: x.ipaddress || '' }, x.name) },
    { key: 'state', label: 'State', render: (x) => badge(x.state) },
    { key: 'resourcestate', label: 'Resource state', render: (x) => badge(x.resourcestate) },
    where ? { key: 'clustername', label: 'Cluster', render: (x) => h('span', { title: `${x.zonename || ''} / ${x.podname || ''} / ${x.clustername || ''}` }, x.clustername || '') } : null,
    { key: 'cpu', label: 'CPU', sortValue: (x) => hostCPU(x).used / (hostCPU(x).total || 1), render: (x) => usage(`CPU of ${x.name}`, hostCPU(x).used, hostCPU(x).total, fmtMHz, { compact: true }) },
    { key: 'memory', label: 'Memory', sortValue: (x) => hostMemory(x).used / (hostMemory(x).total || 1), render: (x) => usage(`Memory of ${x.name}`, hostMemory(x).used, hostMemory(x).total, fmtBytes, { compact: true }) },
    { key: 'ha', label: 'HA', sortValue: (x) => (x.hostha && x.hostha.hastate) || '', render: haCell },
  ].filter(Boolean);
}

route('/admin/infra', {
  title: 'Infrastructure',
  section: 'admin',
  nav: 'Infrastructure',
  adminOnly: true,
  rootOnly: true,
  async render(el) {
    if (!rootOnly(el, 'Infrastructure')) return;
    const upd = updatedLine();
    const summary = h('div', { class: 'capacity-grid', 'aria-label': 'Capacity per zone' });
    const tree = h('nav', { class: 'infra-tree', 'aria-label': 'Zones, pods and clusters' });
    const hostsBox = h('div', { class: 'infra-hosts' }, loading('Loading hosts…'));
    const notice = h('div', { class: 'refresh-notice' });
    const refresh = h('button', { type: 'button', class: 'btn', 'data-action': 'refresh' }, 'Refresh');
    el.replaceChildren(pageHeader('Infrastructure', upd.el, refresh), notice, summary,
      h('div', { class: 'infra-layout' }, card('Zones, pods and clusters', tree), hostsBox));
    let data = null;

    const load = async () => {
      const [zones, pods, clusters, hosts, capacity] = await Promise.all([
        listAll('listZones'), listAll('listPods'), listAll('listClusters'),
        listAll('listHosts', { type: 'Routing' }), call('listCapacity', {}).then((r) => r.capacity || []),
      ]);
      return { zones, pods, clusters, hosts, capacity };
    };

    const draw = () => {
      const { zones, pods, clusters, hosts, capacity } = data;
      if (!view.openedOnce) {
        for (const z of zones) view.open.add(`zone:${z.id}`);
        for (const p of pods) view.open.add(`pod:${p.id}`);
        view.openedOnce = true;
      }
      // Capacity per zone, as listCapacity computes it (overcommit included).
      summary.replaceChildren(...(zones.length ? zones.map((z) => {
        const rows = capacity.filter((c) => c.zoneid === z.id && CAPACITY_NAMES[c.type] && c.type !== 3);
        return h('section', { class: 'card capacity-card', 'data-zone': z.id },
          h('h2', { class: 'card-title' }, h('span', { class: 'tree-kind' }, 'zone'), z.name, badge(z.allocationstate)),
          rows.length ? h('div', { class: 'usages' }, rows.map((c) => usage(CAPACITY_NAMES[c.type], c.capacityused, c.capacitytotal, c.type === 1 ? fmtMHz : fmtBytes)))
            : h('p', { class: 'muted' }, 'No capacity yet: add hosts and storage.'));
      }) : [card('No zones', emptyState('This cloud has no zone yet. Create one with createZone (cmk or the API).'))]));

      keepFocus(tree, () => tree.replaceChildren(treeList(zones, pods, clusters, hosts)));
      keepFocus(hostsBox, () => drawHosts(hosts, zones, pods, clusters));
    };

    const pick = (kind, id) => {
      view.sel = { kind, id };
      draw();
      const btn = tree.querySelector(`[data-node="${CSS.escape(`${kind}:${id}`)}"]`);
      if (btn) btn.focus();
    };

    function node(kind, item, children, hostsIn, extra) {
      const key = `${kind}:${item.id}`;
      const open = view.open.has(key);
      const cpu = sum(hostsIn, hostCPU);
      const mem = sum(hostsIn, hostMemory);
      const down = hostsIn.filter((x) => x.state !== 'Up').length;
      const selected = view.sel.kind === kind && view.sel.id === item.id;
      const toggle = children ? h('button', {
        type: 'button', class: 'tree-toggle', 'aria-expanded': open ? 'true' : 'false', 'aria-label': `${open ? 'Collapse' : 'Expand'} ${item.name}`,
        onclick: () => {
          if (open) view.open.delete(key);
          else view.open.add(key);
          draw();
          const t = tree.querySelector(`[data-node="${CSS.escape(key)}"]`);
          if (t) t.previousElementSibling.focus();
        },
      }) : h('span', { class: 'tree-toggle-space', 'aria-hidden': 'true' });
      return h('li', { class: `tree-item tree-${kind}` },
        h('div', { class: `tree-row${selected ? ' selected' : ''}` },
          toggle,
          h('button', { type: 'button', class: 'tree-name', 'data-node': key, 'aria-current': selected ? 'true' : null, onclick: () => pick(kind, item.id) },
            h('span', { class: 'tree-kind' }, kind), h('span', { class: 'tree-label' }, item.name),
            h('span', { class: 'tree-count' }, `${hostsIn.length} host${hostsIn.length === 1 ? '' : 's'}`),
            down ? h('span', { class: 'badge badge-bad' }, `${down} not Up`) : null, extra || null),
          hostsIn.length ? h('div', { class: 'tree-bars' },
            usage('CPU', cpu.used, cpu.total, fmtMHz), usage('Memory', mem.used, mem.total, fmtBytes)) : null),
        children && open ? h('ul', { class: 'tree-children' }, children) : null);
    }

    function treeList(zones, pods, clusters, hosts) {
      const all = h('li', { class: 'tree-item tree-all' }, h('div', { class: `tree-row${view.sel.kind === 'all' ? ' selected' : ''}` },
        h('span', { class: 'tree-toggle-space', 'aria-hidden': 'true' }),
        h('button', { type: 'button', class: 'tree-name', 'data-node': 'all:', 'aria-current': view.sel.kind === 'all' ? 'true' : null, onclick: () => pick('all', '') },
          h('span', { class: 'tree-label' }, 'All hosts'), h('span', { class: 'tree-count' }, String(hosts.length)))));
      return h('ul', { class: 'tree' }, all, zones.map((z) => {
        const zp = pods.filter((p) => p.zoneid === z.id);
        return node('zone', z, zp.map((p) => {
          const pc = clusters.filter((c) => c.podid === p.id);
          return node('pod', p, pc.map((c) => node('cluster', c, null, hosts.filter((x) => x.clusterid === c.id),
            c.allocationstate && c.allocationstate !== 'Enabled' ? badge(c.allocationstate) : null)), hosts.filter((x) => x.podid === p.id));
        }), hosts.filter((x) => x.zoneid === z.id));
      }));
    }

    function drawHosts(hosts, zones, pods, clusters) {
      const { kind, id } = view.sel;
      const of = { zone: [zones, 'zoneid'], pod: [pods, 'podid'], cluster: [clusters, 'clusterid'] }[kind];
      const shown = of ? hosts.filter((x) => x[of[1]] === id) : hosts;
      const where = of ? of[0].find((x) => x.id === id) : null;
      const title = where ? `Hosts in ${kind} ${where.name}` : 'All hosts';
      const counts = {};
      for (const x of shown) counts[x.state] = (counts[x.state] || 0) + 1;
      hostsBox.replaceChildren(h('section', { class: 'card card-flush' },
        h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, title),
          h('div', { class: 'state-counts' }, Object.entries(counts).map(([s, n]) => h('span', { class: 'state-count' }, badge(s), ` ${n}`)))),
        wrapTable(table({
          name: 'hosts', columns: hostColumns({ where: kind !== 'cluster' }), rows: shown, caption: title,
          onRow: (x) => go(`#/admin/hosts/${encodeURIComponent(x.id)}`),
          empty: hosts.length ? 'No hosts here.' : 'No hosts yet: start an agent with a registration token, or add one with addHost.',
        }))));
    }

    const tick = refresher({
      load, notice, what: 'figures', updated: upd,
      draw: (d) => {
        data = d;
        draw();
      },
    });
    await tick();
    const p = poll(tick, 5000, { first: 5000 });
    refresh.addEventListener('click', () => p.now());
  },
});
