#!/usr/bin/env bats
# The manual pages: clean under mandoc's linter and under groff (Debian's
# man), and in step with the code.  The lists of flags, keywords and
# signals are read from the sources, so a flag, keyword or signal added
# without documentation fails here.  Also: the logrotate example is the
# installed snippet, and the README points to the repository's own
# design document.
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

# cfg_keywords: the names in the keys[] table of cfg.c, plus those
# cfg_set() handles before the table is consulted (listen, websocket,
# tls_certificate, ...: its strcmp(name, "...") lines).
cfg_keywords() {
	local k own
	k=$(sed -n '/keys\[\][[:space:]]*=[[:space:]]*{/,/^};/p' "$SRC/common/cfg.c" |
	    sed -n 's/^[[:space:]]*{[[:space:]]*"\([A-Za-z0-9_]*\)".*/\1/p')
	[[ -n $k ]] || { echo "no keys[] table found in common/cfg.c" >&2; return 1; }
	own=$(sed -n '/^cfg_set(/,/^}/p' "$SRC/common/cfg.c" |
	    sed -n 's/.*strcmp(name, "\([a-z_]*\)") == 0.*/\1/p')
	[[ -n $own ]] || { echo "no strcmp(name, ...) in cfg_set()" >&2; return 1; }
	printf '%s\n%s\n' "$k" "$own"
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

# man_pages: every page under man/, one per line.
man_pages() {
	local page found=0
	for page in "$SRC"/man/*.[0-9]; do
		[[ -f $page ]] && { printf '%s\n' "$page"; found=1; }
	done
	(( found )) || { echo "no manual pages under $SRC/man" >&2; return 1; }
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

# groff's mdoc package warns on stderr; which warnings a device shows
# differs (groff 1.22.4 reports "Using a macro as first argument cancels
# effect of .Li" under -Tps only), so every installed device of utf8 and
# ps is tried.
@test "every manual page renders under groff -ww -mandoc without a warning" {
	command -v groff >/dev/null || skip "groff is not installed (Debian: groff-base)"
	local pages page dev out bad="" devs=()
	pages=$(man_pages) || fail "no manual pages"
	for dev in utf8 ps; do
		groff -T"$dev" -mandoc </dev/null >/dev/null 2>&1 && devs+=("$dev")
	done
	(( ${#devs[@]} > 0 )) || skip "groff has neither the utf8 nor the ps device"
	for page in $pages; do
		for dev in "${devs[@]}"; do
			out=$(groff -ww -mandoc -T"$dev" "$page" 2>&1 >/dev/null) || true
			[[ -z $out ]] || bad+="${page##*/} (-T$dev):"$'\n'"$out"$'\n'
		done
	done
	[[ -z $bad ]] || fail "groff -ww -mandoc warns:"$'\n'"$bad"
}

# A -column list whose first cell is wider than its column runs the cell
# into the next one under groff ("SIGTTOUIgnored.").  Signal names are
# where that showed: none may be glued to a word in the rendered text.
@test "no signal name runs into the next word, under mandoc or groff" {
	local pages page text glued bad=""
	pages=$(man_pages) || fail "no manual pages"
	for page in $pages; do
		text=""
		if command -v mandoc >/dev/null; then
			text+=$(mandoc -Tutf8 "$page" 2>/dev/null | sed $'s/.\b//g')$'\n'
		fi
		if command -v groff >/dev/null; then
			text+=$(groff -mandoc -Tutf8 -P-cbou "$page" 2>/dev/null)$'\n'
		fi
		[[ -n $text ]] || skip "neither mandoc nor groff is installed"
		glued=$(grep -Eo 'SIG[A-Z0-9]{2,}[a-z][a-z]*' <<<"$text" || true)
		[[ -z $glued ]] || bad+="${page##*/}: $glued"$'\n'
	done
	[[ -z $bad ]] || fail "signal names glued to the next word:"$'\n'"$bad"
}

@test "the logrotate example in preforkd.8 is the installed snippet" {
	local snippet=$SRC/etc/logrotate.d/preforkd shown want
	[[ -f $snippet ]] || fail "no $snippet"
	# The literal display after ".Pa /etc/logrotate.d/preforkd :", with
	# mdoc's escapes for a backslash and a zero-width space undone.
	shown=$(awk '
	    /^\.Pa \/etc\/logrotate\.d\/preforkd :$/ { want = 1; next }
	    want && /^\.Bd -literal/ { on = 1; next }
	    on && /^\.Ed/ { exit }
	    on { gsub(/\\&/, ""); gsub(/\\e/, "\\"); print }
	' "$PAGE8")
	[[ -n $shown ]] || fail "no logrotate example found in man/preforkd.8"
	# The snippet without its leading comment lines.
	want=$(awk '!body && /^#/ { next } { body = 1; print }' "$snippet")
	[[ $shown == "$want" ]] || fail "man/preforkd.8 shows:"$'\n'"$shown"$'\n'"etc/logrotate.d/preforkd has:"$'\n'"$want"
}

@test "the README points to doc/design.md, not outside the repository" {
	local readme=$SRC/README.md
	[[ -f $readme ]] || fail "no $readme"
	grep -q 'doc/design\.md' "$readme" || fail "README.md does not mention doc/design.md"
	! grep -n '\.\./shared' "$readme" || fail "README.md points to ../shared"
	[[ -f $SRC/doc/design.md ]] || fail "README.md names doc/design.md, which is missing"
}
