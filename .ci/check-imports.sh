#!/usr/bin/env bash
# Enforces design.md's rule: imports between our packages point down only.
# Order, top to bottom: cmd, e2e (outside the stack), api, ops, scheduler,
# storage, hypervisor, cluster, fsm.
set -euo pipefail
mod=$(go list -m)
rank() {
  case "$1" in
    cmd|e2e) echo 9 ;; api) echo 8 ;; ops) echo 7 ;; scheduler) echo 6 ;;
    storage) echo 5 ;; hypervisor) echo 4 ;; cluster) echo 3 ;; fsm) echo 1 ;;
    *) echo 0 ;;
  esac
}
bad=0
while read -r pkg imports; do
  from=${pkg#"$mod"/}; from=${from%%/*}
  for imp in $imports; do
    case "$imp" in "$mod"/*) ;; *) continue ;; esac
    to=${imp#"$mod"/}; to=${to%%/*}
    [ "$from" = "$to" ] && continue
    if [ "$to" = cmd ] || [ "$to" = e2e ]; then
      echo "import rule: $pkg imports $imp (nothing imports cmd or e2e)"; bad=1; continue
    fi
    if [ "$(rank "$from")" -le "$(rank "$to")" ]; then
      echo "import rule: $pkg imports $imp, which is not below it (see design.md)"; bad=1
    fi
  done
done < <(go list -f '{{.ImportPath}} {{join .Imports " "}}' ./... ; go list -f '{{.ImportPath}} {{join .TestImports " "}}' ./...)
if [ "$bad" != 0 ]; then exit 1; fi
echo "imports: every package imports only packages below it"
