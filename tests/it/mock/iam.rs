//! IAM users with access keys on moto, made with one raw query-API request each (the tests have
//! no IAM client): STS GetCallerIdentity then answers with the user that owns the key, which is
//! how a test sees which credentials kcluster signed with.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends one IAM query-API request to moto on `port` and returns the response body.
fn iam(port: u16, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("moto answers");
    // moto picks the service from the signature's scope; it does not check the signature.
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("response read");
    assert!(response.starts_with("HTTP/1.1 200"), "{body}: {response}");
    response
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn element(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + tag.len()
        + 2;
    let end = xml[start..]
        .find(&format!("</{tag}>"))
        .expect("closing tag")
        + start;
    xml[start..end].to_string()
}

/// Creates IAM user `name` with an access key; returns (key id, secret).
pub fn user_with_key(port: u16, name: &str) -> (String, String) {
    iam(
        port,
        &format!("Action=CreateUser&UserName={name}&Version=2010-05-08"),
    );
    let xml = iam(
        port,
        &format!("Action=CreateAccessKey&UserName={name}&Version=2010-05-08"),
    );
    (
        element(&xml, "AccessKeyId"),
        element(&xml, "SecretAccessKey"),
    )
}
