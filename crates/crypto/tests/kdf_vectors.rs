//! Known-answer tests for IKEv2 and IKEv1 key derivation.
//!
//! Sources:
//! - NIST CAVP SP 800-135 component test vectors (`ikev2.zip`, `ikev1.zip`, SHA-1 sections),
//!   as published by NIST's Cryptographic Algorithm Validation Program.
//! - NIST ACVP server, IKEv2 KDF unit test (`IkeV2Tests.cs`, "IKEv2 SHA2-256" case) in
//!   usnistgov/ACVP-Server.
//! - The libreswan CAVS IKEv2 tool's recorded SHA-1 vector (`-h 2`, DKM length 132 bytes).
//!
//! Each vector checks SKEYSEED, DKM = prf+(SKEYSEED, Ni|Nr|SPIi|SPIr), the Child SA DKM
//! without and with a new DH value, and the rekeyed SKEYSEED; SK_d is the first prf-output
//! bytes of DKM, as in the CAVP/ACVP definition.

use ferrosec_crypto::kdf::{ikev1, ikev2};
use ferrosec_crypto::{HashAlgorithm, Prf, Secret};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

struct V2 {
    prf: Prf,
    ni: &'static str,
    nr: &'static str,
    gir: &'static str,
    gir_new: &'static str,
    spii: &'static str,
    spir: &'static str,
    skeyseed: &'static str,
    dkm: &'static str,
    dkm_child: &'static str,
    dkm_child_dh: &'static str,
    skeyseed_rekey: &'static str,
}

const V2_CAVP_SHA1: V2 = V2 {
    prf: Prf::HmacSha1,
    ni: "3651fef5c9c35e93",
    nr: "c09a8b90a3f04d59",
    gir: "d084a30166a50fb7325c3960874a839449ef9741c2f4f947d0201dd8c1269273d79509f37e3ca3eb4fa2fe2a28254e289cd3f34dad4eb4df1a07685a4b8a94fa61e2491f7598b3ce65547ff133b3f63d1ac4175eaa695033f3cedb026a6873a36455172a8540b8a5d23a0143bed0390ee49b168269d75fffee9fb62be965993c",
    gir_new: "52f00ab174c25d5b7139ae5ff4e8e9eddee5992d2e36adf8a559ffd90dab1442e4fbe429d320c0f33552a17d1557fa41ea70e8fb916c4fa27ed52b5f8ebd8461afa78f1159159a64055ac5f6319e29c28eae58cbc6847770f32c3fed1d04750484f854790f95e9ec01bc5bc461f24966462e359511329305038e94deb6dd42c2",
    spii: "8e5c3ae507221684",
    spir: "b1f201bb155c3acd",
    skeyseed: "cd2e8050137832245f1dbacc6e4f0a92f94d45d6",
    dkm: "6f1b12cad3cbe097b35430356d869d54cddb0198ec859174d53ceb92dddedbe2436db69f60977c58fa63bbb667f8d36920b109baae8f6c61a9ac49feda01843225d080ec5539d5881a25521ffb2a0a91874a9c0a27fcc2d717eb8963a9e3a89c7ab264757284c28cf8c3ca40576f4220b052b1fb8e9ad60ba3c80557323331a8cbb89f20",
    dkm_child: "4727dc0ef94eb326ce131cf282fb652faa638ad0ddae3786a11bcc0309876009f8c485de011ad962c5b1ca8a41ff8145445749079c5686e26ffebbc342f06981f3da745e11ca0976424d1f8caec623d59dc7186deb20a27b411d1dcb70a365440bf7de905088b0692e8addc094e18d1939bdb67e89798ca6b239e2ccb81c2409dac0106c",
    dkm_child_dh: "b109c21ad4c0797768c1cec9e63554681e48f224bca7f23c20c4ea7041983451e9aa1d5408656c8a975ff1b9d9a12c75ffeb64bdecb30174664cccb4e14f1c377b7f6d1525af77c7092aac3e47f917ebae8297fb5539d2008ce830823a09cc197361d4a289c72745f6ce9fefe812be5bf55b3200fbb82e41a4a40877d3fe106db909707b",
    skeyseed_rekey: "3b03bce748c96d5e8306918d2ff89b68f0648da3",
};

const V2_LIBRESWAN_SHA1: V2 = V2 {
    prf: Prf::HmacSha1,
    ni: "32b50d5f4a3763f3",
    nr: "9206a04b26564cb1",
    gir: "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
    gir_new: "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330",
    spii: "34c9e7c188868785",
    spir: "3ff77d760d2b2199",
    skeyseed: "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7",
    dkm: "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4",
    dkm_child: "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4",
    dkm_child_dh: "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c",
    skeyseed_rekey: "63e81194946ebd05df7df5ebf5d8750056bf1f1d",
};

const V2_ACVP_SHA256: V2 = V2 {
    prf: Prf::HmacSha256,
    ni: "0a58fea9c1d4fee2e74e1aad6fb02dd5f318eb127465a112be8dc3c04d5dba62eae708f9dc1b2362afd6ba4bda3cf5000f4979fbcbadbcfda9291593829c4e905c21db0c2ee15175ce77a8a0dadf25c7f175bc53fd91b636a9b3c50b203de9b9d6dc463dcb4048f101e26498ceaed3afbcd931394a7e099392dfff82e5d6fa85c2e8a8ab90ad363a66795dc32798847e405acd87988140f973058917273a6b0bafb962c75e2b1a21e79c08beeb82168bf8b4b57f3dce867bf7862a7b8acbc21be838021913daf64340c055ed17aaf7b6e1d0ca33ae890ddbdb83f4e615aad5e3bff58c3db70bac81a0dfbabe5391fc62bca4659e22a0741e01d8d06e67d9bb41",
    nr: "e4fdfa68df6171d9eaff8b7b5ad31e7c6098d259f3397c9854cbefe7449b0864c1df16ddece8b26567560f8d59182a44c19149c2d0d72606a160021ade3d23c7c6936c91a4b6bec37adf38cfc84b851c68dcee06f81306f63abbefc07e231e3058c49437a557df617eac01663593d2a3e594699284c0a35eae6931492ccb2a43db72a600a3899205d681d2b76b1280e456339bb10e0c584aecfdae31c77a4c40dbcb345f782ac32835d4c220c1e97254ded6a40075dd717b00b69c86a49e801773026536ae02d58a649827f1ba67610ee936dffd11c9d5a9156631916a0a0046ec0ba42f56f2a18de83d5d71a985b0cc9eec2c06b3d907ca58454419f374069d",
    gir: "9d469de41b4739c7dd01f19aa94f17e48150ae9dbede94832142db19",
    gir_new: "c2987b0767006c3b9aea491bfed1646a3d7194639492b8d45b23b383",
    spii: "c8de93111750e409",
    spir: "32d51b33508997fa",
    skeyseed: "eec13ac67c2e072abb684ab4e7b6ce3e7f400af8b96bed48e113497ed337f8d4",
    dkm: "bc83518f63b762874ac57947cdfae33a8d9724df0b83ee4b6df38c23fc2ad829f4d70b5a68dd1f5a52416f09758638aedf919c09a17c5298cdb703bb75b1005cba0109739aaa4efd2fe7534c95ad05e546e4419931270eddcab68ac1589d7fde47f5b9e8d5b614cb24ec3caf515497a9e99ee6f1b318ff153b539ef071dcaff9b41945dcb780700d69e5dc888a91de195c52825badfd0ab4c33cec71ab5c2b4badefe5455455ce5d8ae91721a2091bcccc1514e69482c9c8da1d9f0f187eedda916393570a8c0a8dfabc26d8ed31e8ea47662515972a22d11d692bc1fac6395aecd82a01ab78daafcd6f3070b1201f158a19331b5d21ceee66fccd2ea37bc07648b9539a52dbf797af53e31a0e8706dd86cf5081ebabd095f281d23c222dd3bc5abf06869017ca8f751cafcc85abea6ba88c139d1f32a12f7f486cf57eae5d85551b97f3963616d8f597c70efa98c1e1fa369fb77a80b1ec5fe533890672c4551172eab1b7fd68ad08c4d4c69f2a867302065ca730aa6915bc2cfb6d93820977",
    dkm_child: "c725012285d56e53244a9baaaf95abfca543708d333a3f3a86ba660e00edd4d489bcd631819fda0413382edd9f53d1ed718e056c2ad91d38de90f06cd434de70141d051c021e7ddd6e4137946b4770dca59a4decabdd866852eb557fdd995646613ff2923f5f23aa58c8fbd5ad52cf2eac9bda97faad5596695f4a747a0f1cc6a1f78b2181138fb19ac24574d2e6b3a40d6e688abb919a27d793b76568ec66bd099f6f476b705c1472d774a1516a11311b887688f36649e24227640ea8d8666b9f452217e7103b6f0a92b6adb8fbda650ba58d6ac13ac6f6b6361a5d1c44f1e9f22196c96295115c5d01a120e7265962d20353a049286908da776c2165f706a16f43d85fcd319f89c4386340bcb8ed10df38345cb68af719abaf997e9789a5f19a392dcecd78168ba282f0b30555c7a47031a3156d12d7158aa41b863b8394d30fec63120e89cbc5750eed7786f7d5961b1f2e6faca641ed776d2211bee757b68b77f94056172553715da9fbd1c9a8728f28a2f3c9714a4917490132562484cd",
    dkm_child_dh: "140a1f2a3c94318ece6edfa8c63f37d8d45982de8b6cbfe34011150db0253e34de3796d4aa579954a0bbf234794eb6e7ece2a8f91100f5507df4ee8e66c7813d4c0ff64d484a3494c54b0d9c605ea24234a49a010ce5c352feb9e1060c8c787229466296cdc9d11bb9d221ed2bb39544572464254ec02a0fbe777b07402c775eb6d3e53cd16214c707f851942cc7da92a811b6c5c82f29d9fc3751b0ebff9898fb14372402a6989ffb9cc32dfe7e2cea32fd882e09804d7fea34ce3b5eb6f303e095c48a452b0a3eccada81af22195ebbaad289aeabdab074c94e751496bde39d868ebf1d693f36d1c3c672bbb59c9f77aeb68de57d77da231b7f13d6d277f600c3d3086c4de7b3a59127f4cb9c118935574f30e1b7c88b52c8c3531fdbd38ee3d14c69e81803ced6e7501fa0180f6d110b648272002dc1ad5bf09dc83188011da1d48632e0d2453c8abdd8e9fd32a576aeb9ddfb0a024f674441c20a950d9bd8cd7b30933cc0d8e87b55e8aa9d913579b410417b3acc13c14bf73c457327873",
    skeyseed_rekey: "05f796c8df322a7e33283ae5fa2f376d8d5efa0ac3745fc548e430031424c121",
};

fn check_v2(name: &str, v: &V2) {
    let (ni, nr, gir, gir_new) = (h(v.ni), h(v.nr), h(v.gir), h(v.gir_new));
    let spii = u64::from_be_bytes(h(v.spii).try_into().unwrap());
    let spir = u64::from_be_bytes(h(v.spir).try_into().unwrap());
    let skeyseed = ikev2::skeyseed(v.prf, &ni, &nr, &gir).unwrap();
    assert_eq!(
        hex::encode(skeyseed.expose()),
        v.skeyseed,
        "{name}: SKEYSEED"
    );

    let dkm_len = v.dkm.len() / 2;
    let dkm = v
        .prf
        .prf_plus(
            skeyseed.expose(),
            &[&ni, &nr, &spii.to_be_bytes(), &spir.to_be_bytes()],
            dkm_len,
        )
        .unwrap();
    assert_eq!(hex::encode(dkm.expose()), v.dkm, "{name}: DKM");

    // The same bytes through the SK_* splitter: SK_d is the first key_len bytes, then SK_ai …
    let integ = 20;
    let encr = (dkm_len - 3 * v.prf.key_len() - 2 * integ) / 2;
    let keys = ikev2::IkeSaKeys::derive(
        v.prf,
        &skeyseed,
        &ni,
        &nr,
        spii,
        spir,
        ikev2::IkeSaKeyLengths { encr, integ },
    )
    .unwrap();
    let joined = [
        keys.sk_d.expose(),
        keys.sk_ai.expose(),
        keys.sk_ar.expose(),
        keys.sk_ei.expose(),
        keys.sk_er.expose(),
        keys.sk_pi.expose(),
        keys.sk_pr.expose(),
    ]
    .concat();
    assert_eq!(
        hex::encode(&joined),
        v.dkm[..joined.len() * 2],
        "{name}: SK_* split"
    );

    let sk_d = keys.sk_d.clone();
    let child_len = v.dkm_child.len() / 2;
    let child = ikev2::child_keymat(v.prf, &sk_d, None, &ni, &nr, child_len).unwrap();
    assert_eq!(
        hex::encode(child.expose()),
        v.dkm_child,
        "{name}: DKM(Child SA)"
    );
    let child_dh = ikev2::child_keymat(v.prf, &sk_d, Some(&gir_new), &ni, &nr, child_len).unwrap();
    assert_eq!(
        hex::encode(child_dh.expose()),
        v.dkm_child_dh,
        "{name}: DKM(Child SA D-H)"
    );

    // The Child SA splitter returns the same KEYMAT in RFC 7296 §2.17 order.
    let ck = ikev2::ChildSaKeys::derive(v.prf, &sk_d, Some(&gir_new), &ni, &nr, 34, 30).unwrap();
    let joined = [
        ck.encr_i.expose(),
        ck.integ_i.expose(),
        ck.encr_r.expose(),
        ck.integ_r.expose(),
    ]
    .concat();
    assert_eq!(
        hex::encode(&joined),
        v.dkm_child_dh[..joined.len() * 2],
        "{name}: child split"
    );

    let rekey = ikev2::rekey_skeyseed(v.prf, &sk_d, &gir_new, &ni, &nr);
    assert_eq!(
        hex::encode(rekey.expose()),
        v.skeyseed_rekey,
        "{name}: SKEYSEED(Rekey)"
    );
}

#[test]
fn ikev2_cavp_sha1() {
    check_v2("CAVP SHA-1", &V2_CAVP_SHA1);
}

#[test]
fn ikev2_libreswan_cavs_sha1() {
    check_v2("libreswan CAVS SHA-1", &V2_LIBRESWAN_SHA1);
}

#[test]
fn ikev2_acvp_sha256() {
    check_v2("ACVP SHA2-256", &V2_ACVP_SHA256);
}

/// NIST CAVP SP 800-135 `ikev1.zip`, digital signature authentication, SHA-1.
#[test]
fn ikev1_cavp_sha1_signature() {
    let cky_i: [u8; 8] = h("382e5c8b0a3fa307").try_into().unwrap();
    let cky_r: [u8; 8] = h("ba4b7616700a2413").try_into().unwrap();
    let ni = h("ced5635da6796075");
    let nr = h("6244b427712fb776");
    let gxy = h(
        "2a2e0bbe8da3657a83f3d35826e49e2d38e557e912a1b9e6c30c63577b3eab715466202862027f2c26f3090743555579611771db0b92bef93834432a3a7762fc8a0f4889fd281d6082770d10a40d7bad61e832f041e620d6787e7f62ab2861ddfbe272e0d9d3cdec5f1bbf750e24b8b32d6d714968ad69ce5086c32ad2742ebc",
    );
    let prf = Prf::from_hash(HashAlgorithm::Sha1);
    let skeyid = ikev1::skeyid_sig(prf, &ni, &nr, &gxy);
    assert_eq!(
        hex::encode(skeyid.expose()),
        "dc37ac99de6dcfbd1ee74af7fb36f9b4b0a7829d"
    );
    let k = ikev1::Phase1Keys::derive(prf, skeyid, &gxy, &cky_i, &cky_r);
    assert_eq!(
        hex::encode(k.skeyid_d.expose()),
        "486293ed547adb562cefdaf43d3d8457b196f2b6"
    );
    assert_eq!(
        hex::encode(k.skeyid_a.expose()),
        "f4053b5ca07e59bb41b8f401037ca90b72b3917e"
    );
    assert_eq!(
        hex::encode(k.skeyid_e.expose()),
        "49a1d53a80fb77e663552964fbbcb45092021473"
    );
}

/// Pre-shared-key SKEYID is prf(psk, Ni_b | Nr_b); checked against RFC 2202 §3 test case 2
/// (HMAC-SHA-1 with key "Jefe"), splitting the message into "nonces".
#[test]
fn ikev1_psk_skeyid_is_hmac_of_nonces() {
    let psk = Secret::from_slice(b"Jefe");
    let s = ikev1::skeyid_psk(Prf::HmacSha1, &psk, b"what do ya want ", b"for nothing?");
    assert_eq!(
        hex::encode(s.expose()),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
}
