#!/usr/bin/env bash
# FTPS: RETR and STOR of 1 GiB with explicit TLS (curl --ssl-reqd) on Ferry, vsftpd and ProFTPD,
# all three with the same certificate (RSA 2048, made here) and the same protocol and cipher
# (TLS 1.2, ECDHE-RSA-AES128-GCM-SHA256: set in each server and forced by curl), data
# connections protected (PROT P), in one interleaved run. vsftpd and ProFTPD are the binaries of
# ../shared/bench/peers with TLS turned on in a copy of their configuration (ProFTPD's mod_tls
# comes from Debian's proftpd-mod-crypto, downloaded here once). Run as root from the checkout,
# after ../shared/bench/peers/install.sh. Servers are stopped by their PIDs.
#
# Knobs: ROUNDS=5 PEERS="ferry vsftpd proftpd"
# Output: one JSON line per transfer in $OUT/ftps.jsonl, and the table on stdout.
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-5}; PEERS=${PEERS:-"ferry vsftpd proftpd"}
OUT=${OUT:-${RESULTS:-$T/results}/ftps-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; RAW=$OUT/ftps.jsonl
CIPHER=ECDHE-RSA-AES128-GCM-SHA256
cleanup() { stop_peers; }
trap cleanup EXIT
trap 'exit 130' INT TERM

tls=$T/tls; mkdir -p "$tls"
if [ ! -s "$tls/cert.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/key.pem" -out "$tls/cert.pem" \
    -days 30 -subj /CN=127.0.0.1 2>/dev/null || { log "openssl failed"; exit 1; }
fi
chmod 644 "$tls/cert.pem" "$tls/key.pem"
if [ ! -f "$T/pkgs/proftpd-mod-crypto/usr/lib/proftpd/mod_tls.so" ]; then
  ( cd "$T/pkgs" && apt-get download -q proftpd-mod-crypto >/dev/null 2>&1 ) || true
  dpkg -x "$T"/pkgs/proftpd-mod-crypto_*.deb "$T/pkgs/proftpd-mod-crypto" || { log "no mod_tls"; exit 1; }
fi

# TLS settings, added to copies of the peers' own configurations.
start_tls_peer() {
  case $1 in
    ferry)
      FERRY_ARGS="--tls-cert $tls/cert.pem --tls-key $tls/key.pem" start_peer ferry ;;
    vsftpd)
      mkdir -p "$T/vsftpd/run" "$T/vsftpd/empty"
      { grep -v '^ssl_enable' "$B/peers/vsftpd/vsftpd.conf"
        printf '%s\n' ssl_enable=YES "rsa_cert_file=$tls/cert.pem" "rsa_private_key_file=$tls/key.pem" \
          force_local_logins_ssl=YES force_local_data_ssl=YES ssl_tlsv1=YES ssl_sslv2=NO ssl_sslv3=NO \
          require_ssl_reuse=NO "ssl_ciphers=$CIPHER"; } > "$T/vsftpd/run/vsftpd-tls.conf"
      chown root:root "$T/vsftpd/empty"; chmod 755 "$T/vsftpd/empty"
      PID[vsftpd]=$(cd "$B" && . peers/common.sh && peer_dirs vsftpd &&
        launch "$T/vsftpd/run/stdout.log" "$(bin_of vsftpd/usr/sbin/vsftpd)" "$T/vsftpd/run/vsftpd-tls.conf" | tail -1)
      sleep 1; log "started vsftpd (TLS) pid ${PID[vsftpd]}" ;;
    proftpd)
      PID[proftpd]=$(cd "$B" && bash peers/proftpd/start.sh | tail -1)   # writes its run files
      stop_pid "${PID[proftpd]}"
      run=$T/proftpd/run
      { cat "$run/proftpd.conf"
        cat <<CONF
ModulePath $T/pkgs/proftpd-mod-crypto/usr/lib/proftpd
LoadModule mod_tls.c
<IfModule mod_tls.c>
  TLSEngine on
  TLSRequired on
  TLSProtocol TLSv1.2
  TLSCipherSuite $CIPHER
  TLSRSACertificateFile $tls/cert.pem
  TLSRSACertificateKeyFile $tls/key.pem
  TLSVerifyClient off
  TLSRenegotiate none
  TLSOptions NoSessionReuseRequired
  TLSLog $run/tls.log
</IfModule>
CONF
      } > "$run/proftpd-tls.conf"
      PID[proftpd]=$(cd "$B" && . peers/common.sh &&
        launch "$run/stdout.log" "$(bin_of proftpd-core/usr/sbin/proftpd)" -n -q -c "$run/proftpd-tls.conf" | tail -1)
      sleep 1; log "started proftpd (TLS) pid ${PID[proftpd]}" ;;
  esac
}

big=$T/fixtures/big.bin
mkdir -p "$T/fixtures"
[ "$(stat -c %s "$big" 2>/dev/null)" = 1073741824 ] || head -c 1073741824 /dev/urandom > "$big"
for n in $PEERS; do
  start_tls_peer "$n" || exit 1
  r=$T/$n/root
  [ -f "$r/big.bin" ] && [ "$(stat -c %h "$r/big.bin")" = 1 ] || { rm -f "$r/big.bin"; cp "$big" "$r/big.bin"; }
  chown bench:bench "$r/big.bin"; cat "$r/big.bin" > /dev/null
done
cat "$big" > /dev/null

C=(curl -s --ssl-reqd -k --tls-max 1.2 --ciphers "$CIPHER" --max-time 120)
for r in $(seq "$ROUNDS"); do
  a=($PEERS); for k in "${!a[@]}"; do
    n=${a[$(( (k + r) % ${#a[@]} ))]}; url="ftp://bench:bench@127.0.0.1:${PORT[$n]}"
    j=$("${C[@]}" -o /dev/null -w '%{size_download} %{speed_download}' "$url/big.bin" |
        awk '{printf "{\"ok\":%s,\"bytes\":%d,\"mb_s\":%.1f}", ($1==1073741824?"true":"false"), $1, $2/1e6}')
    printf '{"peer":"%s","workload":"retr","round":%s,"result":%s}\n' "$n" "$r" "${j:-{\}}" >> "$RAW"
    log "retr r$r $n: $j"
    j=$("${C[@]}" -o /dev/null -w '%{size_upload} %{speed_upload}' -T "$big" "$url/ftps_up.bin" |
        awk '{printf "{\"ok\":%s,\"bytes\":%d,\"mb_s\":%.1f}", ($1==1073741824?"true":"false"), $1, $2/1e6}')
    printf '{"peer":"%s","workload":"stor","round":%s,"result":%s}\n' "$n" "$r" "${j:-{\}}" >> "$RAW"
    log "stor r$r $n: $j"
    rm -f "$T/$n/root/ftps_up.bin"
  done
done

python3 - "$RAW" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
peers = list(dict.fromkeys(r["peer"] for r in rows))
print("| workload | " + " | ".join(peers) + " | Ferry / best other |")
print("|---" * (len(peers) + 2) + "|")
for w, name in (("retr", "RETR 1 GiB over TLS, MB/s"), ("stor", "STOR 1 GiB over TLS, MB/s")):
    m = {}
    for p in peers:
        v = [r["result"]["mb_s"] for r in rows if r["peer"] == p and r["workload"] == w and r["result"].get("ok")]
        m[p] = (st.median(v), min(v), max(v)) if v else None
    cells = [f"{m[p][0]:,.0f} ({m[p][1]:,.0f}-{m[p][2]:,.0f})" if m[p] else "failed" for p in peers]
    others = [m[p][0] for p in peers if p != "ferry" and m[p]]
    ratio = f"{m['ferry'][0] / max(others):.2f}x" if m.get("ferry") and others else "–"
    print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
PY
echo "raw: $RAW" >&2
