#!/usr/bin/env bats
# The manual pages: clean under mandoc's linter, and in step with the code.
# The lists of flags, keywords and signals are read from the sources, so a
# flag, keyword or signal added without documentation fails here.
#
# Everything is read under $TOP_SRCDIR; point it at a copy of the tree to
# try these checks against modified sources.

load helpers

setup() {
	SRC=$TOP_SRCDIR
	PAGE8=$SRC/man/preforkd.8
	PAGE5=$SRC/man/preforkd.conf.5
	[[ -f $PAGE8 ]] || fail "no manual page at $PAGE8"
}

# getopt_letters: every option letter of the getopt string in main.c.
getopt_letters() {
	local s
	s=$(sed -n 's/.*getopt([^"]*"\([^"]*\)".*/\1/p' "$SRC/master/main.c")
	[[ -n $s ]] || { echo "no getopt string found in master/main.c" >&2; return 1; }
	tr -d ':' <<<"$s" | grep -o .
}

# cfg_keywords: the names in the keys[] table of cfg.c, plus listen
# (handled by cfg_set() before the table is consulted).
cfg_keywords() {
	local k
	k=$(sed -n '/keys\[\][[:space:]]*=[[:space:]]*{/,/^};/p' "$SRC/common/cfg.c" |
	    sed -n 's/^[[:space:]]*{[[:space:]]*"\([A-Za-z0-9_]*\)".*/\1/p')
	[[ -n $k ]] || { echo "no keys[] table found in common/cfg.c" >&2; return 1; }
	printf '%s\nlisten\n' "$k"
}

# master_signals: the names in the handled[] array of master.c.
master_signals() {
	local s
	s=$(sed -n '/handled\[\][[:space:]]*=[[:space:]]*{/,/};/p' "$SRC/master/master.c" |
	    grep -o 'SIG[A-Z0-9]*')
	[[ -n $s ]] || { echo "no handled[] array found in master/master.c" >&2; return 1; }
	printf '%s\n' "$s"
}

# section NAME FILE: the mdoc source of one .Sh section.
section() {
	awk -v want=".Sh $1" '/^\.Sh /{ on = ($0 == want) } on' "$2"
}

@test "every manual page is clean under mandoc -Tlint -Wstyle" {
	command -v mandoc >/dev/null || skip "mandoc is not installed"
	local pages=() page out bad=""
	for page in "$SRC"/man/*.[0-9]; do
		[[ -f $page ]] && pages+=("$page")
	done
	(( ${#pages[@]} > 0 )) || fail "no manual pages under $SRC/man"
	for page in "${pages[@]}"; do
		out=$(mandoc -Tlint -Wstyle "$page" 2>&1) || true
		# Whether an .Xr target resolves depends on the manuals and the
		# mandoc.db of the host, not on the page: ignore those notes
		# unless MAN_LINT_STRICT=1.
		if [[ ${MAN_LINT_STRICT:-0} != 1 ]]; then
			out=$(grep -v -e 'referenced manual not found' \
			    -e 'outdated mandoc.db' <<<"$out" || true)
		fi
		[[ -z $out ]] || bad+="$out"$'\n'
	done
	[[ -z $bad ]] || fail "mandoc -Tlint -Wstyle complains:"$'\n'"$bad"
}

@test "every getopt flag has an entry and is in the SYNOPSIS of preforkd.8" {
	local letters x synopsis missing="" nosyn=""
	letters=$(getopt_letters) || fail "cannot read the flags"
	synopsis=$(section SYNOPSIS "$PAGE8")
	for x in $letters; do
		grep -Eq "^\.It Fl $x( |\$)" "$PAGE8" || missing+=" -$x"
		grep -Eq "Fl [A-Za-z]*$x" <<<"$synopsis" || nosyn+=" -$x"
	done
	[[ -z $missing && -z $nosyn ]] ||
	    fail "flags of master/main.c not documented in man/preforkd.8:" \
	    "${missing:+no '.It Fl X' entry for$missing;}" \
	    "${nosyn:+not in the SYNOPSIS:$nosyn}"
}

@test "every configuration keyword has an entry in preforkd.conf.5" {
	local keys k missing=""
	[[ -f $PAGE5 ]] || fail "no manual page at $PAGE5"
	keys=$(cfg_keywords) || fail "cannot read the keywords"
	for k in $keys; do
		grep -Eq "^\.It Cm $k( |\$)" "$PAGE5" || missing+=" $k"
	done
	[[ -z $missing ]] ||
	    fail "keywords of common/cfg.c without an '.It Cm keyword' entry" \
	    "in man/preforkd.conf.5:$missing"
}

@test "every signal the master handles is in the SIGNALS section" {
	local sigs s text missing=""
	sigs=$(master_signals) || fail "cannot read the signals"
	text=$(section SIGNALS "$PAGE8")
	[[ -n $text ]] || fail "man/preforkd.8 has no SIGNALS section"
	for s in $sigs; do
		grep -qw -- "$s" <<<"$text" || missing+=" $s"
	done
	[[ -z $missing ]] ||
	    fail "signals in handled[] of master/master.c missing from the" \
	    "SIGNALS section of man/preforkd.8:$missing"
}
