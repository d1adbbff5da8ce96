//! strand-tls: identities, server verification and client auth, checked by
//! real rustls handshakes over an in-memory pipe.

use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use strand_tls::rustls::{self, ClientConnection, ServerConnection};
use strand_tls::{
    CertificateDer, ClientAuth, ClientCertVerification, ClientTls, Identity, PrivateKeyDer,
    ServerName, ServerTls, ServerVerification, TlsError,
};

#[derive(Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// Runs a full handshake between the two configs over memory buffers.
fn handshake(
    client: &ClientTls,
    server_name: &str,
    server: &ServerTls,
) -> Result<(ClientConnection, ServerConnection), (Side, rustls::Error)> {
    handshake_built(
        client.build().expect("client config"),
        server_name,
        server.build().expect("server config"),
    )
}

/// [`handshake`] with configs already built (a server that keeps its
/// session tickets across handshakes).
fn handshake_built(
    client: Arc<rustls::ClientConfig>,
    server_name: &str,
    server: Arc<rustls::ServerConfig>,
) -> Result<(ClientConnection, ServerConnection), (Side, rustls::Error)> {
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let mut c = ClientConnection::new(client, name).map_err(|e| (Side::Client, e))?;
    let mut s = ServerConnection::new(server).map_err(|e| (Side::Server, e))?;
    for _ in 0..32 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("write to vec");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("read from slice");
            s.process_new_packets().map_err(|e| (Side::Server, e))?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("write to vec");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("read from slice");
            c.process_new_packets().map_err(|e| (Side::Client, e))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish in 32 rounds");
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn cert(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn issue_client(&self, name: &str) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity::from_der(
            vec![cert.der().clone(), self.cert()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap()
    }
}

fn pinned(identity: &Identity) -> ClientTls {
    ClientTls::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
}

#[test]
fn pem_round_trip() {
    let id = Identity::dev().unwrap();
    let cert_pem = id.cert_pem();
    let key_pem = id.key_pem();
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let back = Identity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    assert_eq!(back.cert_chain(), id.cert_chain());
    assert_eq!(
        back.private_key().secret_der(),
        id.private_key().secret_der()
    );
    assert_eq!(back.cert_pem(), cert_pem);
    assert_eq!(back.key_pem(), key_pem);
    assert_eq!(
        strand_tls::load_certs_pem(cert_pem.as_bytes()).unwrap(),
        id.cert_chain()
    );

    // A chain of two certificates keeps its order.
    let ca = Ca::new("round trip ca");
    let client = ca.issue_client("client");
    let back =
        Identity::from_pem(client.cert_pem().as_bytes(), client.key_pem().as_bytes()).unwrap();
    assert_eq!(back.cert_chain().len(), 2);
    assert_eq!(back.cert_chain(), client.cert_chain());
}

#[test]
fn pem_files_round_trip() {
    let id = Identity::self_signed(&["files.test"]).unwrap();
    let dir = std::env::temp_dir().join(format!("strand-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, id.cert_pem()).unwrap();
    std::fs::write(&key, id.key_pem()).unwrap();
    let back = Identity::from_pem_files(&cert, &key).unwrap();
    assert_eq!(back.cert_chain(), id.cert_chain());
    let missing = Identity::from_pem_files(dir.join("missing.pem"), &key).unwrap_err();
    assert!(matches!(missing, TlsError::ReadFile { .. }), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_pem_is_refused() {
    let a = Identity::dev().unwrap();
    let b = Identity::dev().unwrap();
    let err = Identity::from_pem(a.cert_pem().as_bytes(), b.key_pem().as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::InvalidIdentity(_)), "{err}");
    let err = Identity::from_pem(b"not pem", a.key_pem().as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate), "{err}");
    let err = Identity::from_pem(a.cert_pem().as_bytes(), b"").unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey), "{err}");
    let err = strand_tls::load_certs_pem(
        b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(matches!(err, TlsError::Pem(_)), "{err}");
}

#[test]
fn self_signed_sans_ip_and_dns() {
    let id = Identity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let server = ServerTls::new(id.clone());
    handshake(&pinned(&id), "localhost", &server).unwrap();
    // An IP server name only matches an IP SAN: this proves "127.0.0.1" became one.
    handshake(&pinned(&id), "127.0.0.1", &server).unwrap();
    let (side, err) = handshake(&pinned(&id), "example.com", &server).unwrap_err();
    assert_eq!(side, Side::Client);
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
    let (side, _) = handshake(&pinned(&id), "::1", &server).unwrap_err();
    assert_eq!(side, Side::Client);

    // A name given as DNS does not match as an IP, and the other way round.
    let dns_only = Identity::self_signed(&["localhost"]).unwrap();
    let (side, _) = handshake(
        &pinned(&dns_only),
        "127.0.0.1",
        &ServerTls::new(dns_only.clone()),
    )
    .unwrap_err();
    assert_eq!(side, Side::Client);

    let dev = Identity::dev().unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        handshake(&pinned(&dev), name, &ServerTls::new(dev.clone())).unwrap();
    }
}

#[test]
fn insecure_accepts_anything() {
    let id = Identity::self_signed(&["somewhere.test"]).unwrap();
    let client = ClientTls::new(ServerVerification::Insecure);
    handshake(&client, "elsewhere.invalid", &ServerTls::new(id.clone())).unwrap();
    handshake(&client, "10.0.0.1", &ServerTls::new(id)).unwrap();
}

#[test]
fn webpki_roots_refuse_a_self_signed_server() {
    let id = Identity::dev().unwrap();
    let client = ClientTls::new(ServerVerification::WebPkiRoots);
    let (side, err) = handshake(&client, "localhost", &ServerTls::new(id)).unwrap_err();
    assert_eq!(side, Side::Client);
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}

#[test]
fn callback_sees_the_chain_and_can_refuse() {
    let id = Identity::dev().unwrap();
    type Seen = Vec<(Vec<Vec<u8>>, String)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let log = seen.clone();
    let accept = ClientTls::new(ServerVerification::Callback(Arc::new(
        move |chain, name| {
            let chain = chain.iter().map(|c| c.to_vec()).collect();
            log.lock()
                .unwrap()
                .push((chain, name.to_str().into_owned()));
            Ok(())
        },
    )));
    handshake(&accept, "localhost", &ServerTls::new(id.clone())).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, vec![id.cert_chain()[0].to_vec()]);
    assert_eq!(seen[0].1, "localhost");

    let refuse = ClientTls::new(ServerVerification::Callback(Arc::new(|_, _| {
        Err("not the server we wanted".into())
    })));
    let (side, err) = handshake(&refuse, "localhost", &ServerTls::new(id)).unwrap_err();
    assert_eq!(side, Side::Client);
    assert!(
        err.to_string().contains("not the server we wanted"),
        "{err}"
    );
}

#[test]
fn required_client_auth_rejects_a_client_without_certificate() {
    let server_id = Identity::dev().unwrap();
    let ca = Ca::new("client ca");
    for verification in [
        ClientCertVerification::Ca(vec![ca.cert()]),
        ClientCertVerification::AnyCertificate,
    ] {
        let server =
            ServerTls::new(server_id.clone()).with_client_auth(ClientAuth::Required(verification));
        let (side, err) = handshake(&pinned(&server_id), "localhost", &server).unwrap_err();
        assert_eq!(side, Side::Server);
        assert!(
            matches!(err, rustls::Error::NoCertificatesPresented),
            "{err}"
        );
    }
}

#[test]
fn optional_client_auth_accepts_a_client_without_certificate() {
    let server_id = Identity::dev().unwrap();
    let ca = Ca::new("client ca");
    for verification in [
        ClientCertVerification::Ca(vec![ca.cert()]),
        ClientCertVerification::AnyCertificate,
    ] {
        let server =
            ServerTls::new(server_id.clone()).with_client_auth(ClientAuth::Optional(verification));
        // The server sends a CertificateRequest; the rustls client answers it empty.
        let (_c, s) = handshake(&pinned(&server_id), "localhost", &server).unwrap();
        assert!(s.peer_certificates().is_none());
    }
}

#[test]
fn ca_client_auth_accepts_its_clients_and_rejects_unknown_ones() {
    let server_id = Identity::dev().unwrap();
    let ca = Ca::new("client ca");
    let other = Ca::new("other ca");
    let good = ca.issue_client("good client");
    let stranger = other.issue_client("stranger");
    for auth in [
        ClientAuth::Required(ClientCertVerification::Ca(vec![ca.cert()])),
        ClientAuth::Optional(ClientCertVerification::Ca(vec![ca.cert()])),
    ] {
        let server = ServerTls::new(server_id.clone()).with_client_auth(auth);
        let (_c, s) = handshake(
            &pinned(&server_id).with_identity(good.clone()),
            "localhost",
            &server,
        )
        .unwrap();
        assert_eq!(s.peer_certificates().unwrap(), good.cert_chain());
        let (side, err) = handshake(
            &pinned(&server_id).with_identity(stranger.clone()),
            "localhost",
            &server,
        )
        .unwrap_err();
        assert_eq!(side, Side::Server);
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
    }
}

#[test]
fn any_certificate_accepts_an_unknown_ca_and_self_signed() {
    let server_id = Identity::dev().unwrap();
    let stranger = Ca::new("unknown ca").issue_client("stranger");
    let self_signed = Identity::self_signed(&["me"]).unwrap();
    let server = ServerTls::new(server_id.clone())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::AnyCertificate));
    for client_id in [stranger, self_signed] {
        let (_c, s) = handshake(
            &pinned(&server_id).with_identity(client_id.clone()),
            "localhost",
            &server,
        )
        .unwrap();
        assert_eq!(s.peer_certificates().unwrap(), client_id.cert_chain());
    }
}

#[test]
fn custom_client_verifier_follows_optional_and_required() {
    let server_id = Identity::dev().unwrap();
    let ca = Ca::new("custom ca");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert()).unwrap();
    // The inner verifier says "mandatory"; Optional must still admit anonymous clients.
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        strand_tls::provider(),
    )
    .build()
    .unwrap();
    let optional = ServerTls::new(server_id.clone()).with_client_auth(ClientAuth::Optional(
        ClientCertVerification::Custom(inner.clone()),
    ));
    handshake(&pinned(&server_id), "localhost", &optional).unwrap();
    let required = ServerTls::new(server_id.clone())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::Custom(inner)));
    let (side, _) = handshake(&pinned(&server_id), "localhost", &required).unwrap_err();
    assert_eq!(side, Side::Server);
    let good = ca.issue_client("custom client");
    handshake(
        &pinned(&server_id).with_identity(good),
        "localhost",
        &required,
    )
    .unwrap();
}

#[test]
fn alpn_is_negotiated() {
    let id = Identity::dev().unwrap();
    let server = ServerTls::new(id.clone()).with_alpn(vec![b"quic".to_vec()]);
    let (c, s) = handshake(
        &pinned(&id).with_alpn(vec![b"other".to_vec(), b"quic".to_vec()]),
        "localhost",
        &server,
    )
    .unwrap();
    assert_eq!(c.alpn_protocol(), Some(&b"quic"[..]));
    assert_eq!(s.alpn_protocol(), Some(&b"quic"[..]));
    let (side, err) = handshake(
        &pinned(&id).with_alpn(vec![b"h2".to_vec()]),
        "localhost",
        &server,
    )
    .unwrap_err();
    assert_eq!(side, Side::Server);
    assert!(matches!(err, rustls::Error::NoApplicationProtocol), "{err}");
}

#[test]
fn clones_share_one_built_config_until_the_options_change() {
    let id = Identity::dev().unwrap();
    let tls = pinned(&id);
    let first = tls.build().unwrap();
    assert!(Arc::ptr_eq(&first, &tls.build().unwrap()));
    assert!(Arc::ptr_eq(&first, &tls.clone().build().unwrap()));
    // The options are public fields: a change is seen at the next build.
    let mut changed = tls.clone();
    changed.alpn = vec![b"h2".to_vec()];
    let rebuilt = changed.build().unwrap();
    assert!(!Arc::ptr_eq(&first, &rebuilt));
    assert_eq!(rebuilt.alpn_protocols, vec![b"h2".to_vec()]);
    changed.identity = Some(Identity::self_signed(&["client"]).unwrap());
    assert!(!Arc::ptr_eq(&rebuilt, &changed.build().unwrap()));
    // Alternating options (a transport setting its own ALPN on a clone)
    // find their config again.
    assert!(Arc::ptr_eq(&first, &tls.build().unwrap()));
    // A ClientTls made separately, even from equal options, has its own.
    assert!(!Arc::ptr_eq(&first, &pinned(&id).build().unwrap()));
}

#[test]
fn options_made_afresh_can_share_the_configs_of_others() {
    let id = Identity::dev().unwrap();
    let keeper = ClientTls::new(ServerVerification::Insecure);
    let first = pinned(&id).sharing_configs_with(&keeper).build().unwrap();
    let again = pinned(&id).sharing_configs_with(&keeper).build().unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    let other = pinned(&Identity::self_signed(&["other"]).unwrap())
        .sharing_configs_with(&keeper)
        .build()
        .unwrap();
    assert!(!Arc::ptr_eq(&first, &other));
}

#[test]
fn a_second_connection_with_the_same_options_resumes_its_session() {
    let id = Identity::dev().unwrap();
    let server = ServerTls::new(id.clone()).build().unwrap();
    let tls = pinned(&id);
    let (first, _) = handshake_built(tls.build().unwrap(), "localhost", server.clone()).unwrap();
    assert_eq!(first.handshake_kind(), Some(rustls::HandshakeKind::Full));
    let (second, _) = handshake_built(tls.clone().build().unwrap(), "localhost", server).unwrap();
    assert_eq!(
        second.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}

#[test]
fn empty_ca_list_is_a_config_error() {
    let err = ClientTls::new(ServerVerification::Ca(Vec::new()))
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsError::Verifier(_)), "{err}");
    let err = ServerTls::new(Identity::dev().unwrap())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::Ca(Vec::new())))
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsError::Verifier(_)), "{err}");
}

/// A self-signed certificate marked as a CA, as `openssl req -x509` makes
/// by default, valid from `not_before` to `not_after`.
fn ca_flagged_self_signed(
    name: &str,
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.self_signed(&key).unwrap();
    Identity::from_der(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap()
}

const VALID_FROM: (i32, u8, u8) = (2020, 1, 1);
const VALID_UNTIL: (i32, u8, u8) = (4000, 1, 1);

#[test]
fn a_pinned_ca_flagged_certificate_is_accepted_with_its_name_checked() {
    let id = ca_flagged_self_signed("localhost", VALID_FROM, VALID_UNTIL);
    let server = ServerTls::new(id.clone());
    // Plain chain verification refuses this one (CaUsedAsEndEntity); given
    // as the CA, it is pinned.
    handshake(&pinned(&id), "localhost", &server).unwrap();

    let (side, err) = handshake(&pinned(&id), "example.com", &server).unwrap_err();
    assert_eq!(side, Side::Client);
    let text = err.to_string();
    assert!(text.contains("\"example.com\""), "{text}");
    assert!(
        text.contains("only valid for DnsName(\"localhost\")"),
        "{text}"
    );
    assert!(
        text.contains("connect with a name the certificate lists"),
        "{text}"
    );
}

#[test]
fn a_ca_flagged_certificate_that_is_not_pinned_is_refused_in_words() {
    let id = ca_flagged_self_signed("localhost", VALID_FROM, VALID_UNTIL);
    let other = ca_flagged_self_signed("localhost", VALID_FROM, VALID_UNTIL);
    let (side, err) = handshake(&pinned(&other), "localhost", &ServerTls::new(id)).unwrap_err();
    assert_eq!(side, Side::Client);
    let text = err.to_string();
    // Issuer and subject names are equal, so webpki's verdict is the CA flag.
    assert!(text.contains("is a CA certificate"), "{text}");
    assert!(
        text.contains("give this exact certificate as the CA to pin it"),
        "{text}"
    );
}

#[test]
fn a_pinned_certificate_out_of_its_validity_period_is_refused() {
    let expired = ca_flagged_self_signed("localhost", (2020, 1, 1), (2021, 1, 1));
    let (side, err) = handshake(
        &pinned(&expired),
        "localhost",
        &ServerTls::new(expired.clone()),
    )
    .unwrap_err();
    assert_eq!(side, Side::Client);
    let text = err.to_string();
    assert!(text.contains("certificate expired"), "{text}");
    assert!(text.contains("renew the server's certificate"), "{text}");

    let future = ca_flagged_self_signed("localhost", (3999, 1, 1), (4000, 1, 1));
    let (_, err) = handshake(
        &pinned(&future),
        "localhost",
        &ServerTls::new(future.clone()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not valid yet"), "{err}");
}

#[test]
fn a_pinned_leaf_from_an_unknown_ca_is_accepted_and_others_are_told_what_to_pass() {
    let ca = Ca::new("private ca");
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let leaf = params.signed_by(&key, &ca.issuer).unwrap();
    let server_id = Identity::from_der(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let server = ServerTls::new(server_id);

    let pin_leaf = ClientTls::new(ServerVerification::Ca(vec![leaf.der().clone()]));
    handshake(&pin_leaf, "localhost", &server).unwrap();
    let trust_ca = ClientTls::new(ServerVerification::Ca(vec![ca.cert()]));
    handshake(&trust_ca, "localhost", &server).unwrap();

    let stranger = Identity::self_signed(&["localhost"]).unwrap();
    let (side, err) = handshake(&pinned(&stranger), "localhost", &server).unwrap_err();
    assert_eq!(side, Side::Client);
    let text = err.to_string();
    assert!(
        text.contains("was not issued by the certificate given as the CA"),
        "{text}"
    );
    assert!(
        text.contains("or the server's own certificate to pin it"),
        "{text}"
    );
}

#[test]
fn the_public_roots_say_what_to_pass_for_a_private_certificate() {
    let id = Identity::dev().unwrap();
    let client = ClientTls::new(ServerVerification::WebPkiRoots);
    let (_, err) = handshake(&client, "localhost", &ServerTls::new(id)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not issued by a publicly trusted CA"),
        "{text}"
    );
    assert!(
        text.contains("give that certificate as the CA (tls.ca / --ca)"),
        "{text}"
    );
}
