#!/bin/sh
# Make TLS credentials for migration, laid out as QEMU's tls-creds-x509
# expects: DIR/ca-cert.pem, server-cert.pem, server-key.pem,
# client-cert.pem, client-key.pem (a private CA signs both certificates;
# the server's names localhost and 127.0.0.1 plus any HOST given), or,
# with --psk, a keys.psk file (QEMU's format: "identity:hexkey").
#
#   scripts/tls-make-creds.sh DIR [HOST...]     # X.509
#   scripts/tls-make-creds.sh --psk FILE [ID]   # pre-shared key (id "ferry")
#
# For tests and first steps: a real deployment's CA belongs to its owner.
set -e
umask 077
if [ "$1" = "--psk" ]; then
	[ -n "$2" ] || { echo "usage: $0 --psk FILE [IDENTITY]" >&2; exit 2; }
	printf '%s:%s\n' "${3:-ferry}" "$(openssl rand -hex 32)" > "$2"
	exit 0
fi
[ -n "$1" ] || { echo "usage: $0 DIR [HOST...] | --psk FILE [IDENTITY]" >&2; exit 2; }
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in "$@"; do
	case "$h" in
	*[!0-9.]*) san="$san,DNS:$h" ;;
	*) san="$san,IP:$h" ;;
	esac
done
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca-key.pem
openssl req -new -x509 -key ca-key.pem -out ca-cert.pem -days 3650 \
	-subj "/CN=ferry migration CA $$" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
for who in server client; do
	key $who-key.pem
	openssl req -new -key $who-key.pem -out $who.csr -subj "/CN=ferry-$who" 2>/dev/null
	if [ $who = server ]; then
		ext="subjectAltName=$san
extendedKeyUsage=serverAuth"
	else
		ext="extendedKeyUsage=clientAuth"
	fi
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n%s\n' "$ext" > $who.ext
	openssl x509 -req -in $who.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
		-out $who-cert.pem -days 3650 -extfile $who.ext 2>/dev/null
	rm -f $who.csr $who.ext
done
rm -f ca-cert.srl
chmod 644 ca-cert.pem server-cert.pem client-cert.pem
