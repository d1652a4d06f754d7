// Entry point of the Stratus web console: core, every view module (each
// registers its routes when imported), then the router.

import { start } from './core/router.js';
import { showError } from './core/ui.js';
import './core/login.js';
import './tenant/vms.js';
import './tenant/deploy.js';
import './tenant/volumes.js';
import './tenant/snapshots.js';
import './tenant/jobs.js';
import './tenant/keys.js';
import './admin/index.js';

// Nothing fails silently: an error no view caught still shows in words.
window.addEventListener('unhandledrejection', (e) => {
  showError(e.reason || 'An action failed for an unknown reason.');
});

start();
