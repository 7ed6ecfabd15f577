#!/bin/sh
# The calculator's tests; prints "N passed, M failed" like most test runners.
passed=0
failed=0
check() {
  got=$(sh calc.sh "$1" "$2" "$3")
  if [ "$got" = "$4" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: calc.sh $1 $2 $3 gave $got, expected $4"
  fi
}
check add 2 3 5
check add 10 -4 6
check mul 3 4 12
check mul 0 9 0
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
