#!/usr/bin/env bash
# Signed models against a database intruder. Two sites publish version 1
# (signed by the coordinator's key, which the sites pin); two operators
# put it into production. `fedfuse-site deploy` writes it, verified, and
# prints version, digest and signer; it refuses to write through a
# symlink. Then, as PostgreSQL superuser: (a) one byte of the stored
# signature is changed: deploy refuses with a clear message and writes
# nothing; (b) with the signature restored, one byte of the artifact is
# changed AND its stored digest recomputed (what an intruder who knows the
# hash would do): deploy refuses again, and a restarted coordinator, which
# serves that version as the model of round 2, finds every site refusing
# to train on it.
. "$(dirname "$0")/lib.sh"
setup
log=$work/coord.err
psql_su() { psql -d "$DB" -v ON_ERROR_STOP=1 -qAt "$@"; }

coord_start coord --sites site-1,site-2 --rounds 1 --min-sites 2 \
  --wait-sites 30 --deadline 40
site_start site-1 site-1; s1=$SITE_PID
site_start site-2 site-2; s2=$SITE_PID
expect_exit "$COORD_PID" 60 coordinator
expect_exit "$s1" 15 site-1
expect_exit "$s2" 15 site-2
pub=$(tr -d '\n' <"$work/signing_key.pub")
grep -q "public key $pub" "$log" || fail "the coordinator did not print $pub"

# Two operators put version 1 into production.
"$FEDFUSE_BIN/fedfusectl" keygen --id op2 --role operator \
  --key "$work/op2.key" --csr "$work/op2.csr" >/dev/null ||
  fail "keygen op2"
op operators add "$work/op2.csr" --role operator --ca-dir "$pki/ca" \
  --out "$work/op2.crt" >/dev/null || fail "operators add op2"
op promote feddigits 1 --to production --reason "signed model test" \
  >/dev/null || fail "promote (first operator)"
"$FEDFUSE_BIN/fedfusectl" --db "$DB" --cert "$work/op2.crt" \
  --key "$work/op2.key" --ca "$pki/ca/ca.crt" approve feddigits 1 \
  >/dev/null || fail "approve (second operator)"
[ "$(ctl versions feddigits | jq -r '.[0].stage')" = production ] ||
  fail "version 1 is not in production"

# deploy OUT [LOG]: fedfuse-site deploy as site-1; sets RC.
deploy() {
  site_sec site-1
  RC=0
  "$FEDFUSE_BIN/fedfuse-site" deploy --out "$1" --id site-1 \
    --coordinator "127.0.0.1:$PORT" "${SITE_SEC[@]}" \
    >"$work/${2:-deploy}.out" 2>"$work/${2:-deploy}.err" || RC=$?
}

# A coordinator serves the production version to deploy.
coord_start coord2 --sites site-1,site-2 --rounds 2 --min-sites 2 \
  --wait-sites 60 --deadline 40
mkdir -p "$work/deploy"
deploy "$work/deploy/model.bin" deploy-good
[ "$RC" = 0 ] || fail "deploy of the good production version exited $RC"
cat "$work/deploy-good.out"
digest=$(ctl versions feddigits | jq -r '.[0].digest')
grep -qx "version 1" "$work/deploy-good.out" || fail "deploy names no version"
grep -qx "digest $digest" "$work/deploy-good.out" || fail "deploy digest"
grep -qx "signer $pub" "$work/deploy-good.out" || fail "deploy signer"
[ "$(b2sum -l 256 "$work/deploy/model.bin" | cut -d' ' -f1)" = "$digest" ] ||
  fail "the deployed file does not hash to version 1's digest"
[ -z "$(find "$work/deploy" -name 'model.bin.*')" ] ||
  fail "deploy left a temporary file behind"

# Never through a symlink.
ln -s "$work/elsewhere.bin" "$work/deploy/link.bin"
deploy "$work/deploy/link.bin" deploy-link
[ "$RC" = 1 ] || fail "deploy through a symlink exited $RC, not 1"
grep -q 'is a symbolic link' "$work/deploy-link.err" ||
  fail "deploy did not say why it refused the symlink"
[ ! -e "$work/elsewhere.bin" ] || fail "deploy wrote through the symlink"

# (a) The stored signature, one byte changed.
psql_su -c "UPDATE versions SET signature = set_byte(signature, 0,
            (get_byte(signature, 0) + 1) % 256)
            WHERE model = 'feddigits' AND number = 1" >/dev/null ||
  fail "cannot tamper with the signature"
deploy "$work/deploy/bad-sig.bin" deploy-bad-sig
[ "$RC" = 1 ] || fail "deploy of a tampered signature exited $RC, not 1"
grep 'refusing model version 1: the signature does not verify with the pinned coordinator key' \
  "$work/deploy-bad-sig.err" || fail "no clear refusal of the bad signature"
[ ! -e "$work/deploy/bad-sig.bin" ] || fail "a refused model was written"
psql_su -c "UPDATE versions SET signature = set_byte(signature, 0,
            (get_byte(signature, 0) + 255) % 256)
            WHERE model = 'feddigits' AND number = 1" >/dev/null ||
  fail "cannot restore the signature"

# (b) The artifact's last parameter, lowest bit flipped (still a finite
# number), with its digest recomputed.
"$FEDFUSE_BIN/fedfusectl" --db "$DB" export feddigits 1 "$work/v1.bin" \
  >/dev/null || fail "cannot export version 1"
size=$(stat -c %s "$work/v1.bin")
cp "$work/v1.bin" "$work/v1-bad.bin"
last=$(od -An -tu1 -j $((size - 4)) -N1 "$work/v1.bin" | tr -d ' ')
printf "$(printf '\\%03o' $(( last ^ 1 )))" |
  dd of="$work/v1-bad.bin" bs=1 seek=$((size - 4)) conv=notrunc 2>/dev/null
bad_digest=$(b2sum -l 256 "$work/v1-bad.bin" | cut -d' ' -f1)
[ "$bad_digest" != "$digest" ] || fail "the tampered artifact is unchanged"
printf "UPDATE versions SET artifact = decode('%s', 'hex'), digest = '%s'
        WHERE model = 'feddigits' AND number = 1;\n" \
  "$(od -An -v -tx1 "$work/v1-bad.bin" | tr -d ' \n')" "$bad_digest" \
  >"$work/tamper.sql"
psql_su -f "$work/tamper.sql" >/dev/null || fail "cannot tamper the artifact"
deploy "$work/deploy/bad-art.bin" deploy-bad-art
[ "$RC" = 1 ] || fail "deploy of a tampered artifact exited $RC, not 1"
grep 'refusing model version 1: the signature does not verify with the pinned coordinator key' \
  "$work/deploy-bad-art.err" || fail "no clear refusal of the bad artifact"
[ ! -e "$work/deploy/bad-art.bin" ] || fail "a refused model was written"
kill -TERM "$COORD_PID"
expect_exit "$COORD_PID" 20 "coordinator 2"

# A restarted coordinator serves the tampered version for round 2: it
# says so, and the site refuses to train on it.
coord_start coord3 --sites site-1 --rounds 2 --min-sites 1 --wait-sites 5 \
  --deadline 30
grep -q 'version 1 as stored in the registry does not verify' \
  "$work/coord3.err" || fail "the coordinator did not notice the tampering"
site_start site-1 site-1 site-1-tampered; s1=$SITE_PID
wait_log "$work/site-1-tampered.err" \
  'ERROR .*refusing model version 1: the signature does not verify with the pinned coordinator key [0-9a-f]{16}.*; not training' 30
grep -E 'refusing model version 1' "$work/site-1-tampered.err"
grep -q 'METRIC site_round' "$work/site-1-tampered.out" &&
  fail "the site trained on the tampered model"
pass
