#!/usr/bin/env bash
# Mutual TLS and per-call authentication. Refused, each with its reason in
# the coordinator log (one WARN line) and in the caller's answer: a caller
# with no client certificate; a site whose certificate another CA issued
# (made with openssl); a site whose certificate an operator revoked; a
# caller that presents site-2's certificate but claims to be site-1.
# Approved sites then train two rounds and a signed version is published;
# site-4, revoked while round 2 runs (its upload held open by a test
# pause), is dropped from that round: version 2 comes from site-1 and
# site-2 alone and the audit holds site.dropped for site-4.
. "$(dirname "$0")/lib.sh"
setup
log=$work/coord.err

coord_start coord --sites site-1,site-2,site-4 --rounds 2 --min-sites 2 \
  --wait-sites 30 --deadline 40
grep -q 'TLS is off' "$log" && fail "the coordinator runs without TLS"
site_enroll site-1
site_enroll site-2
site_enroll site-3

# probe ID [CERT KEY]: one Register call; prints the verdict.
probe() {
  local id=$1
  shift
  "$FEDFUSE_BIN/test_fed_tls_probe" --coordinator "127.0.0.1:$PORT" \
    --ca "$pki/ca/ca.crt" --id "$id" "$@"
}

# 1. No client certificate at all.
out=$(probe site-1) || fail "the no-certificate probe got no answer: $out"
echo "no certificate: $out"
[ "$out" = "refused: no client certificate" ] ||
  fail "no-certificate caller not refused as expected: $out"
wait_log "$log" \
  'WARN .*refused Register call from site=site-1: no client certificate' 5

# 2. site-2's certificate, claiming to be site-1.
out=$(probe site-1 --cert "$pki/sites/site-2.crt" \
      --key "$pki/sites/site-2.key") || fail "the probe got no answer: $out"
echo "wrong holder: $out"
[ "$out" = "refused: certificate is for site-2, message claims site-1" ] ||
  fail "a certificate of site-2 was taken for site-1: $out"

# 3. A certificate from another CA (a real fedfuse-site presents it).
alien=$work/alien
mkdir -p "$alien"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$alien/ca.key" -out "$alien/ca.crt" -subj "/CN=alien CA" \
  -days 30 >/dev/null 2>&1 || fail "openssl: no alien CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$alien/site.key" -out "$alien/site.csr" \
  -subj "/CN=site-4/OU=site" >/dev/null 2>&1 || fail "openssl: no CSR"
printf 'extendedKeyUsage=clientAuth\n' >"$alien/ext"
openssl x509 -req -in "$alien/site.csr" -CA "$alien/ca.crt" \
  -CAkey "$alien/ca.key" -CAcreateserial -out "$alien/site.crt" -days 30 \
  -extfile "$alien/ext" >/dev/null 2>&1 || fail "openssl: no certificate"
site_start site-4 site-4 alien --cert "$alien/site.crt" \
  --key "$alien/site.key" --retry-seconds 5
wait_exit "$SITE_PID" 20
[ "$RC" = 1 ] || fail "the site with an alien certificate exited $RC, not 1"
grep -q 'refused this site: .*not issued by the consortium CA' \
  "$work/alien.err" || fail "the alien site was not told why"
grep 'refused Register call from site=site-4: .*not issued by the consortium CA' \
  "$log" || fail "no refusal line for the alien certificate"

# 4. A revoked certificate.
op sites revoke site-3 --reason "laptop stolen" >/dev/null ||
  fail "cannot revoke site-3"
site_start site-3 site-3 revoked --retry-seconds 5
wait_exit "$SITE_PID" 20
[ "$RC" = 1 ] || fail "the revoked site exited $RC, not 1"
grep -qE 'refused this site: certificate [0-9a-f]{32}: revoked .*laptop stolen' \
  "$work/revoked.err" || fail "the revoked site was not told why"
grep -E 'refused Register call from site=site-3: certificate [0-9a-f]+: revoked' \
  "$log" || fail "no refusal line for the revoked certificate"
[ "$(audit_count site.refused)" -ge 4 ] ||
  fail "expected a site.refused audit row per refused registration"

# Approved sites train; site-4 holds its uploads open for 2.5 s.
site_start site-1 site-1; s1=$SITE_PID
site_start site-2 site-2; s2=$SITE_PID
FEDFUSE_TEST_UPLOAD_PAUSE_MS=2500 site_start site-4 site-4; s4=$SITE_PID
wait_log "$log" 'round 1 published version 1' 40
grep -q 'signature verified' "$work/site-1.err" ||
  fail "site-1 did not verify the model it trained on"

# Revoke site-4 as soon as round 2 opens: it is dropped from it.
wait_log "$log" 'state waiting -> training \(round 2\)' 30
op sites revoke site-4 --reason "compromised during round 2" >/dev/null ||
  fail "cannot revoke site-4"
expect_exit "$COORD_PID" 60 coordinator
expect_exit "$s1" 15 site-1
expect_exit "$s2" 15 site-2
wait_exit "$s4" 20
[ "$RC" = 1 ] || fail "the site revoked during the run exited $RC, not 1"
grep -E 'site=site-4 dropped from round 2: certificate .*revoked' "$log" ||
  fail "site-4 was not dropped from round 2"
ctl audit --action site.dropped --site site-4 |
  jq -e 'any(.details.round == 2 and
             .details.reason == "certificate revoked")' >/dev/null ||
  fail "no site.dropped audit row for site-4 in round 2"

# Both versions are signed by the coordinator's key; version 2 comes from
# site-1 and site-2 only.
v=$(ctl versions feddigits)
[ "$(jq length <<<"$v")" = 2 ] || fail "expected 2 versions: $v"
jq -e '.[0].contributions | map(.site) | sort ==
       ["site-1","site-2","site-4"]' <<<"$v" >/dev/null ||
  fail "version 1 is not from the three sites"
jq -e '.[1].contributions | map(.site) | sort == ["site-1","site-2"]' \
  <<<"$v" >/dev/null || fail "version 2 holds the revoked site"
pub=$(tr -d '\n' <"$work/signing_key.pub")
jq -e --arg k "$pub" 'all(.signed and .signer_key == $k)' <<<"$v" \
  >/dev/null || fail "a version is not signed by $pub"
jq -e '.[1].signed_metadata | fromjson | .round == 2 and .parent == 1 and
       (.contributions | length) == 2' <<<"$v" >/dev/null ||
  fail "version 2's signed lineage is not round 2 from 2 sites"
grep -q 'audit chain head signed at shutdown' "$log" ||
  fail "the audit chain head was not signed at shutdown"
pass
