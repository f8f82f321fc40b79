#!/usr/bin/env bash
# The man pages cannot drift from the program: every command, subcommand and
# option that cairn --help, cairn COMMAND --help, mount.cairn --help and
# umount.fuse.cairn --help name must be in cairn(1) (a command's in its
# .SS "cairn COMMAND" subsection), mount.cairn(8) or umount.fuse.cairn(8); every option a page defines (a .TP entry) must still be in
# the help; every key the cairn.toml parser accepts must be in cairn.toml(5),
# and every key the page defines must still be accepted. The pages must also
# format without a warning from man(1), as lintian checks.
#   tests/check-man-pages.sh CAIRN_BINARY [SOURCE_DIR]
# Prints each thing missing, one a line, and exits 1 if there is any.
set -euo pipefail
cairn="$1"
source_dir="${2:-$(cd "$(dirname "$0")/.." && pwd)}"
pages="$source_dir/packaging/man"
config_parser="$source_dir/backend/config/config.cc"

# Options the program accepts although its help does not list them; a page
# may define them. mount(8) passes -t TYPE to every helper; -h and --help
# print the help like every other command's.
declare -A not_in_help=([mount.cairn:-t]=1 [mount.cairn:-h]=1 [mount.cairn:--help]=1
                        [umount.fuse.cairn:-h]=1 [umount.fuse.cairn:--help]=1)

problems=0
problem() { echo "MISSING: $*"; problems=$((problems + 1)); }

# The page's text with the roff escapes that split words taken out: font
# changes, \- for a dash, \& and \c.
plain() {
  sed -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\f\[[^]]*\]//g' -e 's/\\-/-/g' \
      -e 's/\\&//g' -e 's/\\c$//' -e 's/\\(dq/"/g' -e 's/\\e/\\/g' "$1"
}
# The lines of subsection .SS "cairn CMD ..." (up to the next .SS or .SH).
# (ENVIRON, not -v: awk would take the backslashes of a -v value.)
subsection() {
  CMD="$2" awk '/^\.S[SH]/ { inside = ($0 ~ ("^\\.SS .*cairn " ENVIRON["CMD"] "([^a-z_-]|$)")) }
                inside' <<<"$1"
}
# The lines of section .SH NAME, NAME a regular expression (up to the next .SH).
section() {
  NAME="$2" awk '/^\.SH/ { inside = ($0 ~ ("^\\.SH \"?" ENVIRON["NAME"] "\"?$")) }
                 inside' <<<"$1"
}
# The --long and -s options a text names; grouped flags (-sfnv) one by one.
options_in() {
  { grep -oE -- '(^|[^A-Za-z0-9_-])--?[A-Za-z][A-Za-z0-9-]*' || true; } |
    sed -E 's/^[^-]//' |
    awk '/^-[A-Za-z][A-Za-z]+$/ { for (i = 2; i <= length($0); i++) print "-" substr($0, i, 1); next }
         { print }' | sort -u
}
# The words a help text defines in its lists: an indented word followed by
# two spaces ("  status        bytes local"), or KEY=VALUE ("cache_dir=DIR").
defined_words() {
  { grep -oE -- '^ {2,}([a-z_]+ {2}|[a-z_]+=[A-Z]+ )' || true; } |
    sed -E 's/^ +//; s/=[A-Z]+ $/=/; s/ +$//' | sort -u
}
# Whether the text ($1) has the word, option or phrase ($2) standing alone
# (KEY=: followed by anything).
has() {
  local escaped after='([^A-Za-z0-9_-]|$)'
  escaped="$(sed -e 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$2")"
  [[ "$2" == *= ]] && after=''
  grep -qE -- "(^|[^A-Za-z0-9_-])${escaped}${after}" <<<"$1"
}
# The option tokens of the .TP entries of a text: what the page defines.
defined_options() {
  awk 'previous_tp { print } { previous_tp = ($0 ~ /^\.TP/) }' <<<"$1" | options_in
}

for page in cairn.1 mount.cairn.8 umount.fuse.cairn.8 cairn.toml.5; do
  [[ -f "$pages/$page" ]] || { problem "$pages/$page does not exist"; continue; }
  if command -v man >/dev/null; then
    warnings="$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \
                  "$pages/$page" 2>&1 >/dev/null || true)"
    [[ -z "$warnings" ]] || problem "$page formats with warnings: $warnings"
  fi
done

# --- cairn(1) against cairn --help and cairn COMMAND --help.
cairn1="$(plain "$pages/cairn.1")"
main_help="$("$cairn" --help)"
[[ -n "$main_help" ]] || { echo "FAIL: $cairn --help printed nothing"; exit 1; }
for option in $(options_in <<<"$main_help"); do
  has "$cairn1" "$option" || problem "cairn.1: option $option (cairn --help)"
done
for option in $(defined_options "$(section "$cairn1" OPTIONS)"); do
  has "$main_help" "$option" || problem "cairn.1: OPTIONS defines $option, which cairn --help does not name"
done

# The commands block: "  format VOLUME_DIR ...", "  tier out|in PATH...",
# "  pin|unpin PATH...": commands, and their subcommands.
command_lines="$(awk '/^commands:/ { inside = 1; next } /^$/ { inside = 0 }
                      inside && /^  [a-z]/' <<<"$main_help")"
commands="$(awk '{ n = split($1, c, "|"); for (i = 1; i <= n; i++) print c[i] }' \
              <<<"$command_lines" | sort -u)"
[[ "$(wc -w <<<"$commands")" -ge 5 ]] || { echo "FAIL: found no commands in cairn --help"; exit 1; }
for command in $commands; do
  text="$(subsection "$cairn1" "$command")"
  if [[ -z "$text" ]]; then
    problem "cairn.1: no subsection .SS \"cairn $command\" (cairn --help names it)"
    continue
  fi
  # Subcommands: from the main help ("tier out|in") and the command's usage.
  subcommands="$(awk -v cmd="$command" '{ n = split($1, c, "|")
                   for (i = 1; i <= n; i++) if (c[i] == cmd && $2 ~ /^[a-z0-9|]+$/) print $2 }' \
                   <<<"$command_lines" | tr '|' '\n')"
  if [[ "$command" != help ]]; then
    help="$("$cairn" "$command" --help)" || { problem "cairn $command --help failed"; continue; }
    usage="$(awk 'NR == 1 || (started && /^ +cairn /) { started = 1; print; next } { exit }' <<<"$help")"
    subcommands+=$'\n'"$(grep -oE -- "cairn $command( [a-z][a-z0-9]*)+" <<<"$usage" |
                          sed -E "s/^cairn $command //" | tr ' ' '\n' || true)"
    for option in $(options_in <<<"$help"); do
      has "$text" "$option" ||
        problem "cairn.1: section cairn $command lacks $option (cairn $command --help)"
    done
    for word in $(defined_words <<<"$help"); do
      has "$text" "$word" ||
        problem "cairn.1: section cairn $command lacks '$word' (cairn $command --help)"
    done
    # mount --help lists the generic options it accepts and ignores.
    ignored="$(tr '\n' ' ' <<<"$help" |
               sed -nE 's/.*accepted and ignored[^:]*: ([^.]*)\..*/\1/p' |
               sed -E 's/ and /, /g' | tr ',' '\n' | tr -d ' ')"
    for word in $ignored; do
      has "$text" "$word" ||
        problem "cairn.1: section cairn $command lacks '$word' (cairn $command --help)"
    done
    for option in $(defined_options "$text"); do
      has "$help" "$option" ||
        problem "cairn.1: section cairn $command defines $option, which cairn $command --help does not name"
    done
  fi
  for sub in $(sort -u <<<"$subcommands"); do
    has "$text" "$command $sub" ||
      problem "cairn.1: section cairn $command lacks 'cairn $command $sub'"
  done
done

# --- mount.cairn(8) against mount.cairn --help (the same binary, dispatched
# on its name) and the mount options of cairn mount --help.
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
ln -s "$(readlink -f "$cairn")" "$bin/mount.cairn"
helper_help="$("$bin/mount.cairn" --help)"
[[ "$helper_help" == *mount.cairn* ]] || { echo "FAIL: mount.cairn --help: $helper_help"; exit 1; }
mount8="$(plain "$pages/mount.cairn.8")"
for option in $(options_in <<<"$helper_help"); do
  has "$mount8" "$option" || problem "mount.cairn.8: option $option (mount.cairn --help)"
done
for word in $(defined_words <<<"$("$cairn" mount --help)"); do
  has "$mount8" "$word" || problem "mount.cairn.8: mount option '$word' (cairn mount --help)"
done
for option in $(defined_options "$(section "$mount8" OPTIONS)"); do
  has "$helper_help" "$option" || [[ -n "${not_in_help[mount.cairn:$option]:-}" ]] ||
    problem "mount.cairn.8: OPTIONS defines $option, which mount.cairn --help does not name"
done

# --- umount.fuse.cairn(8) against umount.fuse.cairn --help.
ln -s "$(readlink -f "$cairn")" "$bin/umount.fuse.cairn"
umount_help="$("$bin/umount.fuse.cairn" --help)"
[[ "$umount_help" == *umount.fuse.cairn* ]] ||
  { echo "FAIL: umount.fuse.cairn --help: $umount_help"; exit 1; }
umount8="$(plain "$pages/umount.fuse.cairn.8")"
for option in $(options_in <<<"$umount_help"); do
  has "$umount8" "$option" ||
    problem "umount.fuse.cairn.8: option $option (umount.fuse.cairn --help)"
done
for option in $(defined_options "$(section "$umount8" OPTIONS)"); do
  has "$umount_help" "$option" || [[ -n "${not_in_help[umount.fuse.cairn:$option]:-}" ]] ||
    problem "umount.fuse.cairn.8: OPTIONS defines $option, which umount.fuse.cairn --help does not name"
done

# --- cairn.toml(5) against the parser: the keys it compares against, and
# the sections it reads as tables ("a [tier] section").
toml5="$(plain "$pages/cairn.toml.5")"
keys="$(grep -oE 'key [!=]= "[a-z_]+"' "$config_parser" | sed -E 's/.*"(.*)"/\1/' | sort -u)"
tables="$(grep -oE 'a \[[a-z_]+\] section' "$config_parser" | sed -E 's/a \[(.*)\] section/\1/' |
          sort -u)"
[[ "$(wc -w <<<"$keys")" -ge 10 ]] || { echo "FAIL: found no keys in $config_parser"; exit 1; }
for table in $tables; do
  has "$toml5" "[$table]" || problem "cairn.toml.5: section [$table] ($config_parser)"
done
for key in $keys; do
  grep -qx "$key" <<<"$tables" && continue
  has "$toml5" "$key" || problem "cairn.toml.5: key $key ($config_parser)"
done
# The keys the page defines: the words of each .TP entry before its "(".
page_keys="$(awk 'previous_tp { sub(/\(.*/, ""); print } { previous_tp = ($0 ~ /^\.TP/) }' \
               <<<"$(section "$toml5" "VOLUME KEYS"; section "$toml5" "\\[[a-z]+\\]:.*")" |
             sed -E 's/^\.[A-Z]+//' | grep -oE '[a-z][a-z0-9_]*' | sort -u)"
for key in $page_keys; do
  grep -qx "$key" <<<"$keys" ||
    problem "cairn.toml.5 defines key $key, which $config_parser does not accept"
done

if [[ "$problems" -gt 0 ]]; then
  echo "FAIL: $problems missing from the man pages in $pages (or stale there)"
  exit 1
fi
echo "PASS: the man pages name every command, option and cairn.toml key"
