// Entry point of the Stratus web console: core, every view module (each
// registers its routes when imported), then the router.

import { start } from './core/router.js';
import './core/login.js';
import './tenant/vms.js';
import './tenant/deploy.js';
import './tenant/volumes.js';
import './tenant/snapshots.js';
import './tenant/jobs.js';
import './tenant/keys.js';
import './admin/index.js';

start();
