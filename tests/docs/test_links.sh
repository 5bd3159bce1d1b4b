#!/bin/sh
# docs.links: every relative link of README.md and docs/*.md leads somewhere.
#   test_links.sh SOURCE_DIR
# A link [text](path#anchor) must name a file or directory that exists,
# relative to the page; an anchor into a Markdown page (or into the page
# itself) must be the GitHub slug of one of its headings: lower case, ASCII
# letters, digits, "_" and "-" kept, spaces turned into "-", everything
# else dropped (non-ASCII too, which is enough for these pages).  Links
# with a scheme (https:, mailto:) are not followed.  Fenced code is skipped.
set -u
src=$1
status=0
fail() { echo "FAIL: $*" >&2; status=1; }

# Lines outside ``` fences, as "LINENO:TEXT".
prose() { awk '/^```/ { fenced = !fenced; next } !fenced { print NR ":" $0 }' "$1"; }

slugs() {
    prose "$1" | sed -n 's/^[0-9]*:#\{1,6\} \{1,\}//p' | tr 'A-Z' 'a-z' |
        LC_ALL=C sed -e 's/[^a-z0-9 _-]//g' -e 's/ /-/g'
}

links=0
for page in "$src/README.md" "$src"/docs/*.md; do
    dir=$(dirname "$page")
    name=${page#"$src"/}
    # "LINENO TARGET" for each ](TARGET) on a prose line.
    found=$(prose "$page" | awk '{
        n = $0; sub(/:.*/, "", n); line = substr($0, length(n) + 2)
        while (match(line, /\]\([^) ]+\)/)) {
            print n, substr(line, RSTART + 2, RLENGTH - 3)
            line = substr(line, RSTART + RLENGTH)
        }
    }')
    while read -r lineno target; do
        [ -n "$target" ] || continue
        case $target in *:*) continue ;; esac
        links=$((links + 1))
        path=${target%%#*}
        anchor=
        case $target in *#*) anchor=${target#*#} ;; esac
        if [ -z "$path" ]; then file=$page; else file=$dir/$path; fi
        if [ ! -e "$file" ]; then
            fail "$name:$lineno: link to '$target': no such file"
            continue
        fi
        [ -n "$anchor" ] || continue
        case $file in
        *.md) slugs "$file" | grep -Fqx -- "$anchor" ||
                  fail "$name:$lineno: link to '$target': no heading with that anchor" ;;
        esac
    done <<EOF
$found
EOF
done
[ "$links" -gt 0 ] || fail "no relative links found"
[ $status -eq 0 ] && echo "ok: $links relative links in README.md and docs/ lead somewhere"
exit $status
