#!/bin/sh
# A command reviewer for `git massgen review` (this repository uses it on itself): reports
# added lines that should not be committed: conflict markers, and in src/**.rs `dbg!`,
# `todo!`, `unimplemented!` and `println!`/`eprintln!` (output goes through ui.rs).
#
# Reads the unified diff named by $MASSGEN_DIFF (or its first argument), prints
# {"findings": [...]} with the line numbers of the new file.
diff=${MASSGEN_DIFF:-${1:?usage: review-diff.sh DIFF}}
awk '
function esc(s) { gsub(/\\/, "&&", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); gsub(/\r/, "\\r", s); return s }
function report(sev, title, msg) {
  printf "%s{\"path\": \"%s\", \"line\": %d, \"severity\": \"%s\", \"title\": \"%s\", \"message\": \"%s\"}", sep, esc(path), line, sev, title, esc(msg)
  sep = ",\n  "
}
BEGIN { printf "{\"findings\": [\n  "; sep = "" }
/^\+\+\+ / { path = substr($0, 5); sub(/^b\//, "", path); next }
/^--- / { next }
/^@@ / { split($3, h, ","); line = substr(h[1], 2) + 0; next }
/^\+/ {
  text = substr($0, 2)
  if (text ~ /^(<<<<<<<|>>>>>>>)( |$)/ || text == "=======") report("error", "Conflict marker", "a merge conflict marker was committed: " text)
  else if (path ~ /^src\/.*\.rs$/ && text !~ /^[ \t]*\/\//) {
    if (text ~ /dbg!\(/) report("error", "Debug macro left in", "dbg! prints to stderr in released code: " text)
    else if (text ~ /(todo|unimplemented)!\(/) report("error", "Unfinished code", "this panics when reached: " text)
    else if (text ~ /(^|[^e])println!\(|eprintln!\(/) report("warning", "Direct printing", "output goes through ui.rs, never println!/eprintln!: " text)
  }
  line++
  next
}
/^ / { line++ }
END { printf "\n]}\n" }
' "$diff"
