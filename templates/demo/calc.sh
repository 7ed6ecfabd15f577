#!/bin/sh
# A tiny calculator: calc.sh add|mul A B
case "$1" in
  add) echo $(( $2 - $3 )) ;;
  mul) echo $(( $2 * $3 )) ;;
  *) echo "usage: calc.sh add|mul A B" >&2; exit 2 ;;
esac
