#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Entry point of the outbox container image (see docker/README.md).
#
# 1. Secrets from files: every OUTBOX_<SECTION>_<KEY>__FILE=PATH (two
#    underscores before FILE) becomes OUTBOX_<SECTION>_<KEY>=<the file's
#    content>, and the __FILE variable is removed. Two underscores, because
#    real keys already end in _file (OUTBOX_RELAY_PASSWORD_FILE,
#    OUTBOX_RELAY_CA_FILE, OUTBOX_METRICS_TEXTFILE are paths, used as they
#    are) and no key contains "__", so the two can never be confused.
#    The file must hold one line (a final newline is dropped); setting both
#    X and X__FILE is an error.
# 2. The relay password file ([relay] password_file, a path) is used as it
#    is when only its owner (and group) can read it. Docker and Kubernetes
#    mount secrets world-readable by default (0444/0644), which outboxd
#    refuses, so such a file is copied to a private 0600 file under
#    $OUTBOX_SECRETS_DIR (default /run/outbox/secrets) and used from there.
# 3. The configuration (the image's /etc/outbox/outbox.ini or
#    $OUTBOX_CONFIG, then every OUTBOX_* variable on top, which outbox
#    itself applies) is checked with `outbox config check`; an error stops
#    the container with FILE:LINE or the variable's name, exit 78.
# 4. exec the command: outboxd -f by default (logs to stderr); arguments
#    starting with '-' are outboxd options; anything else is run as is
#    (e.g. `outbox queue list`).
#
# Test hooks: OUTBOXD and OUTBOX_CLI name the binaries (default: outboxd
# and outbox from PATH).
set -eu

prog=outbox-entrypoint
cli=${OUTBOX_CLI:-outbox}
daemon=${OUTBOXD:-outboxd}
secrets_dir=${OUTBOX_SECRETS_DIR:-/run/outbox/secrets}
nl='
'

die() { # exit code, message
	echo "$prog: $2" >&2
	exit "$1"
}

# The names of the OUTBOX_*__FILE variables. A value may contain a
# newline, so a name is only believed if it is really set (checked later).
secret_names() {
	env | sed -n 's/^\(OUTBOX_[A-Z0-9_]*__FILE\)=.*/\1/p' | sort -u
}

# Is the variable named $1 set (even to "")? The name is validated first.
is_set() {
	eval "[ \"\${$1+set}\" = set ]"
}

# One line of file $1 into $value (final newline and CR dropped).
read_secret() { # var, file
	[ -f "$2" ] || die 78 "$1: $2 is not a file"
	[ -r "$2" ] || die 78 "$1: cannot read $2"
	value=$(cat "$2"; echo x) # keep trailing newlines for the check
	value=${value%x}
	value=${value%"$nl"}
	value=${value%"$(printf '\r')"}
	case $value in
	*"$nl"*) die 78 "$1: $2 must hold one line" ;;
	esac
}

secrets_from_files() {
	for name in $(secret_names); do
		case $name in
		OUTBOX_[A-Z]*_[A-Z0-9]*__FILE) ;;
		*) die 78 "$name: not an OUTBOX_<SECTION>_<KEY>__FILE name" ;;
		esac
		is_set "$name" || continue
		target=${name%__FILE}
		if is_set "$target"; then
			die 78 "both $target and $name are set; use one"
		fi
		eval "path=\${$name}"
		read_secret "$name" "$path"
		export "$target=$value"
		unset "$name"
	done
}

# Others may read the relay password file: use a private copy instead.
private_password_file() {
	f=${OUTBOX_RELAY_PASSWORD_FILE:-}
	[ -n "$f" ] && [ -f "$f" ] || return 0
	mode=$(stat -L -c %a "$f")
	case $mode in
	*0) return 0 ;; # nothing for others: outboxd accepts it as it is
	esac
	[ -r "$f" ] || die 78 "OUTBOX_RELAY_PASSWORD_FILE: cannot read $f"
	(umask 077 && mkdir -p "$secrets_dir") ||
		die 78 "cannot create $secrets_dir for a private copy of $f"
	copy=$secrets_dir/relay-password
	(umask 077 && cat "$f" >"$copy.tmp" && chmod 0600 "$copy.tmp" &&
		mv -f "$copy.tmp" "$copy") ||
		die 78 "cannot copy $f to $copy"
	echo "$prog: $f is readable by others (mode $mode); using a 0600 copy" >&2
	export OUTBOX_RELAY_PASSWORD_FILE="$copy"
}

# Quiet on success unless the daemon starts (the health check runs
# through here too, every 30 s).
check_config() { # verbose: 1 or 0
	if ! out=$("$cli" config check 2>&1); then
		echo "$out" >&2
		die 78 "configuration error; not starting"
	fi
	[ "$1" = 0 ] || echo "$prog: $out" >&2
}

main() {
	secrets_from_files
	private_password_file
	if [ $# -eq 0 ]; then
		check_config 1
		exec "$daemon" -f
	fi
	case $1 in
	-*)
		check_config 1
		exec "$daemon" -f "$@"
		;;
	esac
	check_config 0
	exec "$@"
}

main "$@"
