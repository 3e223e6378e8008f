//! RFC 5322 / MIME for the Gmail integration: building messages for `users.messages.send` (`raw`) and
//! reading the Gmail API's `format=full` message JSON. Only std, serde_json and base64: no tables beyond
//! the 32 windows-1252 code points, so it stays small in wasm.
//!
//! Transfer encoding of text bodies: quoted-printable when the text is mostly ASCII (readable, compact),
//! base64 when more than a third of its bytes are non-ASCII (Cyrillic, Greek, CJK...), where QP's `=XX`
//! triples would make the body about twice as large as base64 and unreadable anyway.

pub mod build;
pub mod dates;
pub mod headers;
pub mod read;

// ---------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct Attachment {
    pub filename: String,
    pub mime_type: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// "Name <a@b>" or "a@b" (the account address).
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Kept in the raw message: Gmail delivers to it and strips the header.
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// An RFC Message-ID such as "<abc@mail.gmail.com>".
    pub in_reply_to: Option<String>,
    /// Space-separated Message-IDs.
    pub references: Option<String>,
    /// Epoch milliseconds for the Date header (written in UTC).
    pub date_ms: i64,
    /// Full "<random@domain>" value.
    pub message_id: String,
    /// Random bytes from the caller; multipart boundaries derive from them (no RNG in this wasm).
    pub boundary_seed: [u8; 16],
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::build::*;
    #[allow(unused_imports)]
    use super::dates::*;
    #[allow(unused_imports)]
    use super::headers::*;
    #[allow(unused_imports)]
    use super::read::*;
    use super::*;
    use crate::time::{civil_from_days, days_from_civil};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
    use serde_json::{json, Value};

    fn base() -> Outgoing {
        Outgoing {
            from: "Me <me@example.com>".into(),
            to: vec!["you@example.com".into()],
            subject: "Hello".into(),
            text: Some("Hi".into()),
            date_ms: 1_700_000_000_000,
            message_id: "<m1@example.com>".into(),
            boundary_seed: *b"0123456789abcdef",
            ..Default::default()
        }
    }

    /// Every line CRLF-terminated and ≤ 78 octets (the values used in tests allow it; 998 is the hard limit);
    /// encoded-words ≤ 75 and each one decodable on its own (no split UTF-8 characters); boundaries appear
    /// only in their parameter and on delimiter lines.
    fn check_wire(raw: &[u8]) -> String {
        let s = String::from_utf8(raw.to_vec()).expect("7-bit output");
        assert!(s.is_ascii(), "non-ASCII output");
        assert!(!s.replace("\r\n", "").contains(['\r', '\n']), "bare CR or LF");
        for line in s.split("\r\n") {
            assert!(line.len() <= 78, "line too long: {line:?}");
        }
        for b in s.split("boundary=\"").skip(1).map(|r| &r[..r.find('"').unwrap()]) {
            assert!(s
                .split("\r\n")
                .filter(|l| l.contains(b))
                .all(|l| l.starts_with(" boundary=") || l.starts_with("--")));
            assert_eq!(s.matches(&format!("--{b}--\r\n")).count(), 1);
        }
        for w in s.split([' ', '"', '\r', '\n']).filter(|w| w.starts_with("=?")) {
            assert!(w.len() <= 75, "encoded-word too long: {w}");
            let (_, bytes, _) = encoded_word(w).expect("valid encoded-word");
            assert!(String::from_utf8(bytes).is_ok(), "split UTF-8 character in {w}");
        }
        s
    }

    fn parse(raw: &[u8]) -> Message<'_> {
        MessageParser::default().parse(raw).expect("mail-parser reads the message")
    }

    fn addrs(a: Option<&Address>) -> Vec<(Option<String>, String)> {
        a.map(|a| a.iter().map(|x| (x.name().map(String::from), x.address().unwrap_or("").to_string())).collect())
            .unwrap_or_default()
    }

    fn pair(name: Option<&str>, addr: &str) -> (Option<String>, String) {
        (name.map(String::from), addr.to_string())
    }

    fn lf(s: &str) -> String {
        s.replace("\r\n", "\n")
    }

    /// Gmail-style `format=full` JSON made from what mail-parser read: raw unfolded headers, decoded data.
    fn to_gmail(msg: &Message, id: u32) -> Value {
        let part = &msg.parts[id as usize];
        let head = &msg.raw_message()[part.raw_header_offset() as usize..part.raw_body_offset() as usize];
        let head = String::from_utf8_lossy(head).replace("\r\n ", " ").replace("\r\n\t", "\t");
        let headers: Vec<Value> = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| json!({"name": n, "value": v.trim()}))
            .collect();
        let mime =
            part.content_type().map_or("text/plain".into(), |c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")));
        let filename = part.attachment_name().unwrap_or("");
        let mut v = json!({"partId": id.to_string(), "mimeType": mime, "filename": filename, "headers": headers});
        match &part.body {
            PartType::Multipart(children) => {
                v["body"] = json!({"size": 0});
                v["parts"] = children.iter().map(|&c| to_gmail(msg, c)).collect();
            }
            _ if !filename.is_empty() => {
                v["body"] = json!({"attachmentId": format!("att{id}"), "size": part.contents().len()})
            }
            _ => v["body"] = json!({"size": part.contents().len(), "data": URL_SAFE_NO_PAD.encode(part.contents())}),
        }
        v
    }

    fn full() -> Outgoing {
        Outgoing {
            from: "Jörg Müller <joerg@example.de>".into(),
            to: vec![
                "\"Doe, Jane\" <jane@example.com>".into(),
                "plain@example.org".into(),
                "José Ñandú <jose@example.es>".into(),
            ],
            cc: vec!["Team (Ops) <ops@example.com>".into(), r#""Quote \"Q\" Man\\" <q@example.com>"#.into()],
            bcc: vec!["hidden@example.net".into()],
            reply_to: Some("Support Desk <support@example.com>".into()),
            subject: "Grüße aus Köln — 日本語のテキスト and a fairly long tail to force folding 🎉".into(),
            text: Some("Hello Jörg,\n\nTrailing spaces   \nand = signs, a tab\t\nBye".into()),
            html: Some("<p>Hello <b>Jörg</b></p><p>Second &amp; last</p>".into()),
            attachments: vec![
                Attachment {
                    filename: "€ report ünïcode with a rather long filename to force RFC 2231 continuations.pdf".into(),
                    mime_type: "application/pdf".into(),
                    data: (0..=255u8).cycle().take(1000).collect(),
                },
                Attachment {
                    filename: "notes (final), v2.txt".into(),
                    mime_type: "text/plain".into(),
                    data: b"plain text\r\nfile".to_vec(),
                },
            ],
            in_reply_to: Some("<orig@mail.gmail.com>".into()),
            references: Some("<a@x.com> <orig@mail.gmail.com>".into()),
            ..base()
        }
    }

    #[test]
    fn full_message_reads_back_in_mail_parser() {
        let m = full();
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        let msg = parse(&raw);
        assert_eq!(msg.subject(), Some(m.subject.as_str()));
        assert_eq!(addrs(msg.from()), [pair(Some("Jörg Müller"), "joerg@example.de")]);
        assert_eq!(
            addrs(msg.to()),
            [
                pair(Some("Doe, Jane"), "jane@example.com"),
                pair(None, "plain@example.org"),
                pair(Some("José Ñandú"), "jose@example.es")
            ]
        );
        assert_eq!(
            addrs(msg.cc()),
            [pair(Some("Team (Ops)"), "ops@example.com"), pair(Some(r#"Quote "Q" Man\"#), "q@example.com")]
        );
        assert_eq!(addrs(msg.bcc()), [pair(None, "hidden@example.net")]);
        assert_eq!(addrs(msg.reply_to()), [pair(Some("Support Desk"), "support@example.com")]);
        assert_eq!(msg.message_id(), Some("m1@example.com"));
        assert_eq!(msg.in_reply_to().as_text(), Some("orig@mail.gmail.com"));
        assert_eq!(msg.references().as_text_list().map(|l| l.len()), Some(2));
        assert_eq!(msg.date().unwrap().to_timestamp(), 1_700_000_000);
        assert_eq!(lf(&msg.body_text(0).unwrap()), m.text.unwrap());
        assert_eq!(lf(&msg.body_html(0).unwrap()), m.html.unwrap());
        let atts: Vec<_> =
            msg.attachments().map(|a| (a.attachment_name().unwrap().to_string(), a.contents().to_vec())).collect();
        let want: Vec<_> = m.attachments.iter().map(|a| (a.filename.clone(), a.data.clone())).collect();
        assert_eq!(atts, want);
        // Content-Type name= agrees with Content-Disposition filename=.
        for a in msg.attachments() {
            assert_eq!(a.content_type().unwrap().attribute("name"), a.attachment_name());
        }
        // Structure, encodings and boundaries.
        assert!(s.contains("Content-Type: multipart/mixed;\r\n boundary=\"=_a"));
        assert!(s.contains("Content-Type: multipart/alternative;\r\n boundary=\"=_b"));
        assert!(s.contains("filename*0*=UTF-8''%E2%82%AC%20report%20"));
        assert!(s.contains("filename=\"notes (final), v2.txt\""));
        assert!(s.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(s.contains("Trailing spaces  =20\r\n"));
        assert!(s.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(s.contains("MIME-Version: 1.0\r\n"));
        let mime_start = s.find("MIME-Version").unwrap();
        assert!(s.find("\r\n\r\n").unwrap() > mime_start, "Content-Type belongs to the top-level header");
    }

    #[test]
    fn roundtrip_through_gmail_json() {
        let m = full();
        let raw = build(&m).unwrap();
        let msg = parse(&raw);
        let gmail = json!({
            "id": "18c", "threadId": "18b", "labelIds": ["INBOX", "UNREAD"], "snippet": "Hello J&ouml;rg &amp; co",
            "historyId": "1", "internalDate": "1700000000123", "sizeEstimate": raw.len(), "payload": to_gmail(&msg, 0),
        });
        let out = message_from_gmail(&gmail, &Utf8Latin1);
        assert_eq!(out["id"], "18c");
        assert_eq!(out["threadId"], "18b");
        assert_eq!(out["messageId"], "<m1@example.com>");
        assert_eq!(out["from"], "Jörg Müller <joerg@example.de>");
        assert_eq!(
            out["to"],
            json!(["Doe, Jane <jane@example.com>", "plain@example.org", "José Ñandú <jose@example.es>"])
        );
        assert_eq!(out["cc"], json!(["Team (Ops) <ops@example.com>", r#"Quote "Q" Man\ <q@example.com>"#]));
        assert_eq!(out["bcc"], json!(["hidden@example.net"]));
        assert_eq!(out["replyTo"], "Support Desk <support@example.com>");
        assert_eq!(out["subject"], m.subject.as_str());
        assert_eq!(out["date"], "2023-11-14T22:13:20.123Z");
        assert_eq!(out["snippet"], "Hello J&ouml;rg & co"); // unknown entity left alone
        assert_eq!(out["body"], m.text.as_deref().unwrap());
        assert_eq!(out["bodyHtml"], m.html.as_deref().unwrap());
        assert_eq!(out["unread"], true);
        assert_eq!(out["starred"], false);
        assert_eq!(out["labelIds"], json!(["INBOX", "UNREAD"]));
        let atts = out["attachments"].as_array().unwrap();
        assert_eq!(atts.len(), 2);
        assert_eq!(atts[0]["filename"], m.attachments[0].filename.as_str());
        assert_eq!(atts[0]["mimeType"], "application/pdf");
        assert_eq!(atts[0]["size"], 1000);
        assert!(atts[0]["id"].as_str().unwrap().starts_with("att"));
        assert_eq!(atts[1]["filename"], "notes (final), v2.txt");
        assert_eq!(atts[1]["mimeType"], "text/plain");
        // Rendered addresses parse back to the same mailbox.
        assert_eq!(parse_address(out["to"][0].as_str().unwrap()).unwrap(), pair(Some("Doe, Jane"), "jane@example.com"));
    }

    #[test]
    fn body_structures() {
        let kinds = |m: &Outgoing| {
            let raw = build(m).unwrap();
            let s = check_wire(&raw);
            let head = s[..s.find("\r\n\r\n").unwrap()].to_string();
            let msg = parse(&raw);
            (head, msg.body_text(0).map(|t| lf(&t)), msg.body_html(0).map(|t| lf(&t)), msg.attachment_count())
        };
        let (h, t, _, n) = kinds(&base());
        assert!(h.contains("Content-Type: text/plain; charset=UTF-8") && !h.contains("multipart"));
        assert_eq!((t.as_deref(), n), (Some("Hi"), 0));

        let html = Outgoing { text: None, html: Some("<p>Only html</p>".into()), ..base() };
        let (h, _, hb, _) = kinds(&html);
        assert!(h.contains("Content-Type: text/html; charset=UTF-8") && !h.contains("multipart"));
        assert_eq!(hb.as_deref(), Some("<p>Only html</p>"));

        let empty = Outgoing { text: None, ..base() };
        let (h, t, _, _) = kinds(&empty);
        assert!(h.contains("Content-Type: text/plain; charset=UTF-8"));
        assert_eq!(t.as_deref().unwrap_or(""), "");

        let both = Outgoing { html: Some("<i>x</i>".into()), ..base() };
        let (h, t, hb, _) = kinds(&both);
        assert!(h.contains("multipart/alternative") && !h.contains("multipart/mixed"));
        assert_eq!((t.as_deref(), hb.as_deref()), (Some("Hi"), Some("<i>x</i>")));

        let att = |name: &str| Attachment { filename: name.into(), mime_type: "image/png".into(), data: vec![1, 2, 3] };
        let one = Outgoing { attachments: vec![att("a.png")], ..base() };
        let (h, t, _, n) = kinds(&one);
        assert!(h.contains("multipart/mixed"));
        assert_eq!((t.as_deref(), n), (Some("Hi"), 1));
        // Odd MIME types: parameters dropped, message/* sent as octets, garbage rejected.
        let a = Attachment { mime_type: "Text/Plain; charset=utf-8".into(), ..att("x.txt") };
        let s = String::from_utf8(build(&Outgoing { attachments: vec![a], ..base() }).unwrap()).unwrap();
        assert!(s.contains("Content-Type: text/plain;\r\n name=x.txt"));
        let a = Attachment { mime_type: "message/rfc822".into(), ..att("fwd.eml") };
        let s = String::from_utf8(build(&Outgoing { attachments: vec![a], ..base() }).unwrap()).unwrap();
        assert!(s.contains("Content-Type: application/octet-stream;\r\n name=fwd.eml"));
        let a = Attachment { mime_type: "not a type".into(), ..att("x") };
        assert!(build(&Outgoing { attachments: vec![a], ..base() }).unwrap_err().contains("not a type"));
    }

    #[test]
    fn long_lines_and_quoted_printable() {
        let text = format!(
            "{}\n{}\r\n{}   \r{}\n.\nFrom here\ntab at end\t",
            "x".repeat(3000),
            "word ".repeat(400),
            "=".repeat(100),
            "é".repeat(50)
        );
        let html = format!("<div>{}</div>", "y".repeat(2000));
        let m = Outgoing { text: Some(text.clone()), html: Some(html.clone()), ..base() };
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        let body = &s[s.find("\r\n\r\n").unwrap()..];
        assert!(body.split("\r\n").all(|l| l.len() <= 76), "QP/base64 lines are at most 76 octets");
        let msg = parse(&raw);
        let want = text.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(lf(&msg.body_text(0).unwrap()), want);
        assert_eq!(lf(&msg.body_html(0).unwrap()), html);
        // Direct QP checks.
        assert_eq!(qp("a=b \r\nc\t"), "a=3Db=20\r\nc=09");
        let soft = qp(&"a".repeat(80));
        assert_eq!(soft, format!("{}=\r\n{}", "a".repeat(75), "a".repeat(5)));
        assert_eq!(qp(&"é".repeat(30)).split("\r\n").map(str::len).max(), Some(76));
    }

    #[test]
    fn mostly_non_ascii_text_uses_base64() {
        let text = "Привет, мир! Это письмо почти целиком на русском языке.\n日本語も少し。";
        let m = Outgoing { text: Some(text.into()), ..base() };
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        assert!(s.contains("Content-Transfer-Encoding: base64"));
        assert_eq!(lf(&parse(&raw).body_text(0).unwrap()), text);
        // Mostly ASCII with a few accents stays quoted-printable.
        let m = Outgoing { text: Some("Café au lait, naïve résumé of the meeting.".into()), ..base() };
        assert!(String::from_utf8(build(&m).unwrap()).unwrap().contains("quoted-printable"));
    }

    #[test]
    fn header_encoding_and_folding() {
        let names = ["Zoë Ünïcødé-Long Name With Many Parts", "Plain Name", "\"Smith, J. (Jr.)\"", "李小龍"];
        let to: Vec<String> = (0..10).map(|i| format!("{} <user{i}@example.com>", names[i % 4])).collect();
        let subject = "🎉".repeat(40) + " " + &"ascii ".repeat(30) + &"ß".repeat(50);
        let m = Outgoing { to: to.clone(), subject: subject.clone(), ..base() };
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        assert!(s.contains("\r\nSubject: =?UTF-8?"));
        let msg = parse(&raw);
        assert_eq!(msg.subject(), Some(subject.as_str()));
        let got = addrs(msg.to());
        assert_eq!(got.len(), 10);
        for (i, (name, addr)) in got.iter().enumerate() {
            assert_eq!(addr, &format!("user{i}@example.com"));
            assert_eq!(name.as_deref(), Some(names[i % 4].trim_matches('"')));
        }
        // ASCII subjects fold at spaces; a 950-char word is encoded instead of exceeding 998.
        let long = "word ".repeat(60);
        let msg_raw = build(&Outgoing { subject: long.trim().into(), ..base() }).unwrap();
        assert_eq!(parse(&msg_raw).subject(), Some(long.trim()));
        assert!(!String::from_utf8(msg_raw.clone()).unwrap().contains("=?"));
        let huge = "z".repeat(950);
        let raw = build(&Outgoing { subject: huge.clone(), ..base() }).unwrap();
        check_wire(&raw);
        assert_eq!(parse(&raw).subject(), Some(huge.as_str()));
        // Text that looks like an encoded-word is itself encoded, so it reads back literally.
        let tricky = "=?UTF-8?B?SGk=?= literally";
        assert_eq!(parse(&build(&Outgoing { subject: tricky.into(), ..base() }).unwrap()).subject(), Some(tricky));
        // Q for mostly-ASCII text, B for mostly non-ASCII.
        assert_eq!(encode_words("Hello wörld of text"), "=?UTF-8?Q?Hello_w=C3=B6rld_of_text?=");
        assert_eq!(encode_words("Café"), "=?UTF-8?B?Q2Fmw6k=?=");
        assert_eq!(encode_words("日本"), "=?UTF-8?B?5pel5pys?=");
        assert_eq!(decode_header_value(&encode_words(&subject), &Utf8Latin1), subject);
    }

    #[test]
    fn header_injection_rejected() {
        let cases: Vec<Outgoing> = vec![
            Outgoing { subject: "Hi\r\nBcc: victim@example.com".into(), ..base() },
            Outgoing { subject: "Hi\nX-Evil: 1".into(), ..base() },
            Outgoing { to: vec!["you@example.com\r\nBcc: v@example.com".into()], ..base() },
            Outgoing { cc: vec!["Name\n <a@example.com>".into()], ..base() },
            Outgoing { from: "Me <me@example.com>\r\nX: y".into(), ..base() },
            Outgoing { reply_to: Some("r@example.com\r\n".into()), ..base() },
            Outgoing { in_reply_to: Some("<a@b.com>\r\nX: y".into()), ..base() },
            Outgoing { references: Some("<a@b.com>\n<c@d.com>".into()), ..base() },
            Outgoing { message_id: "<m@x.com>\r\nX: y".into(), ..base() },
            Outgoing {
                attachments: vec![Attachment {
                    filename: "a\r\n.pdf".into(),
                    mime_type: "application/pdf".into(),
                    data: vec![],
                }],
                ..base()
            },
            Outgoing {
                attachments: vec![Attachment {
                    filename: "a.txt".into(),
                    mime_type: "text/plain\r\nX: y".into(),
                    data: vec![],
                }],
                ..base()
            },
        ];
        for m in cases {
            assert!(build(&m).is_err(), "accepted {m:?}");
        }
        // Control characters other than CR/LF/NUL in a subject are encoded, not passed through.
        let s = String::from_utf8(build(&Outgoing { subject: "a\u{7}b".into(), ..base() }).unwrap()).unwrap();
        assert!(s.contains("Subject: =?UTF-8?B?YQdi?="));
    }

    #[test]
    fn invalid_addresses_rejected() {
        for bad in [
            "foo",
            "a@",
            "@b.com",
            "a b@c.com",
            "a@b..com",
            "a..b@c.com",
            ".a@c.com",
            "a@-b.com",
            "a@localhost",
            "Name <>",
            "Name <a@b.com",
            "a@b.com, c@d.com",
            "jörg@example.de",
            "\"unterminated@x.com",
            "\"a\\\"@x.com",
            "",
        ] {
            let m = Outgoing { to: vec![bad.into()], ..base() };
            let err = build(&m).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?} -> {err}");
        }
        assert!(build(&Outgoing { from: "nobody".into(), ..base() }).unwrap_err().contains("nobody"));
        assert!(build(&Outgoing { to: vec![], ..base() }).is_err());
        assert!(build(&Outgoing { message_id: "no-brackets@x.com".into(), ..base() }).is_err());
        // Bcc-only is fine.
        assert!(build(&Outgoing { to: vec![], bcc: vec!["b@x.com".into()], ..base() }).is_ok());
    }

    #[test]
    fn parse_and_format_addresses() {
        let ok = |s: &str, n: Option<&str>, a: &str| assert_eq!(parse_address(s).unwrap(), pair(n, a), "{s}");
        ok("a@b.com", None, "a@b.com");
        ok("  <a@b.com> ", None, "a@b.com");
        ok("Name <a@b.com>", Some("Name"), "a@b.com");
        ok("\"Doe, Jane\" <j@x.org>", Some("Doe, Jane"), "j@x.org");
        ok(r#""a \"b\" \\ c" <j@x.org>"#, Some(r#"a "b" \ c"#), "j@x.org");
        ok("\"<weird>\" <j@x.org>", Some("<weird>"), "j@x.org");
        ok("Doe, Jane <j@x.org>", Some("Doe, Jane"), "j@x.org");
        ok("=?ISO-8859-1?Q?Andr=E9?= Pirard <p@x.be>", Some("André Pirard"), "p@x.be");
        ok("a@b.com (Old Style)", Some("Old Style"), "a@b.com");
        ok("\"quoted local\"@x.com", None, "\"quoted local\"@x.com");
        ok("Lit <u@[192.168.0.1]>", Some("Lit"), "u@[192.168.0.1]");
        ok("o'brien+tag@sub.example.co.uk", None, "o'brien+tag@sub.example.co.uk");

        assert_eq!(format_address(None, "a@b.com"), "a@b.com");
        assert_eq!(format_address(Some("  "), "a@b.com"), "a@b.com");
        assert_eq!(format_address(Some("Jane Doe"), "a@b.com"), "Jane Doe <a@b.com>");
        assert_eq!(format_address(Some("Doe, Jane"), "a@b.com"), "\"Doe, Jane\" <a@b.com>");
        assert_eq!(format_address(Some("J. Doe (x)"), "a@b.com"), "\"J. Doe (x)\" <a@b.com>");
        assert_eq!(format_address(Some(r#"Say "hi" \o/"#), "a@b.com"), r#""Say \"hi\" \\o/" <a@b.com>"#);
        assert_eq!(format_address(Some("Zoë"), "a@b.com"), "=?UTF-8?Q?Zo=C3=AB?= <a@b.com>");
        assert_eq!(format_address(Some("a_b=c?"), "a@b.com"), "a_b=c? <a@b.com>");
        // Round trip through parse_address for awkward names.
        for name in ["Doe, Jane", r#"x "y" \ z"#, "Ünï, \"cødé\"", "a  b", "=?not?an=?word"] {
            let f = format_address(Some(name), "q@x.com");
            assert_eq!(parse_address(&f).unwrap(), pair(Some(name), "q@x.com"), "{f}");
        }
    }

    #[test]
    fn reply_helpers() {
        assert_eq!(reply_subject("Hello"), "Re: Hello");
        assert_eq!(reply_subject("Re: Hello"), "Re: Hello");
        assert_eq!(reply_subject("RE: Hello"), "RE: Hello");
        assert_eq!(reply_subject("re : Hello"), "re : Hello");
        assert_eq!(reply_subject("Re[2]: Hello"), "Re[2]: Hello");
        assert_eq!(reply_subject("Regarding it"), "Re: Regarding it");
        assert_eq!(reply_subject("Fwd: x"), "Re: Fwd: x");
        assert_eq!(reply_subject(" Ré: x"), "Re: Ré: x");
        assert_eq!(references_for_reply(None, "<a@x>"), "<a@x>");
        assert_eq!(references_for_reply(Some("<r1@x> <r2@x>"), "<a@x>"), "<r1@x> <r2@x> <a@x>");
        assert_eq!(references_for_reply(Some("<r1@x>\r\n <a@x>"), "<a@x>"), "<r1@x> <a@x>");
        assert_eq!(references_for_reply(Some(""), "bare@x"), "<bare@x>");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_700_000_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
        assert_eq!(rfc5322_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        for z in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let p = |s: &str| parse_date(s).map(iso8601);
        let t = Some("2023-11-14T22:13:20.000Z".to_string());
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 +0000"), t);
        assert_eq!(p("14 Nov 2023 22:13:20 +0000"), t);
        assert_eq!(p("Tue, 14 Nov 2023 23:13:20 +0100 (CET)"), t);
        assert_eq!(p("Tue, 14 Nov 2023 17:13:20 EST"), t);
        assert_eq!(p("Tue, 14 Nov 2023 15:13:20 PDT"), t);
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 GMT"), t);
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 UT"), t);
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 Z"), t);
        assert_eq!(p("Tue, 14 Nov 23 22:13:20 +0000"), t);
        assert_eq!(p("Tuesday, 14 November 2023 22:13:20"), t);
        assert_eq!(p("Tue,14 Nov 2023 22:13:20 -0000"), t);
        assert_eq!(p("14 Nov 2023 16:43 -0530"), Some("2023-11-14T22:13:00.000Z".into()));
        assert_eq!(p("Fri, 21 Nov 97 09:55:06 -0600"), Some("1997-11-21T15:55:06.000Z".into()));
        assert_eq!(p("1 Jan 2024 00:00:00 +0100"), Some("2023-12-31T23:00:00.000Z".into()));
        for bad in [
            "",
            "yesterday",
            "Tue, 14 Foo 2023 22:13:20 +0000",
            "14 Nov 2023 25:00:00 +0000",
            "14 Nov 2023 22:13:20 +01",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_decoding() {
        let d = |s: &str| decode_header_value(s, &Utf8Latin1);
        assert_eq!(d("plain text"), "plain text");
        assert_eq!(d("=?ISO-8859-1?Q?Andr=E9?= Pirard"), "André Pirard");
        assert_eq!(d("=?iso-8859-1?q?this=20is=20some=20text?="), "this is some text");
        // RFC 2047 §8 examples.
        assert_eq!(d("(=?ISO-8859-1?Q?a?=)"), "(a)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?= b)"), "(a b)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)"), "(ab)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=)"), "(ab)");
        assert_eq!(d("(=?ISO-8859-1?Q?a_b?=)"), "(a b)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)"), "(a b)");
        assert_eq!(d("=?UTF-8?B?SGVsbG8gV29ybGQ=?="), "Hello World");
        assert_eq!(d("=?utf-8?b?8J+OiQ?="), "🎉"); // unpadded
                                                   // A character split across two B-words (bad senders) survives.
        assert_eq!(d("=?UTF-8?B?w6k=?= =?UTF-8?B?4oI=?= =?UTF-8?B?rA==?="), "é€");
        assert_eq!(d("=?UTF-8?Q?=E2=82?= =?UTF-8?Q?=AC?="), "€");
        assert_eq!(d("=?UTF-8*en?Q?Hi?="), "Hi");
        assert_eq!(d("=?windows-1252?Q?=80_=93q=94?="), "€ \u{201c}q\u{201d}");
        assert_eq!(d("=?koi8-r?B?8NLJ18XU?="), String::from_utf8_lossy(&[0xF0, 0xD2, 0xC9, 0xD7, 0xC5, 0xD4]));
        // Not encoded-words: left as they are.
        assert_eq!(d("=?bad word?= and =?utf-8?X?abc?= 50%=?"), "=?bad word?= and =?utf-8?X?abc?= 50%=?");
        assert_eq!(d("a =?UTF-8?Q?b?= c"), "a b c");
        // A host charset decoder is used for charsets Utf8Latin1 does not know.
        struct Upper;
        impl Charsets for Upper {
            fn decode(&self, charset: &str, bytes: &[u8]) -> Option<String> {
                (charset == "x-upper").then(|| String::from_utf8_lossy(bytes).to_uppercase())
            }
        }
        assert_eq!(decode_header_value("=?x-upper?Q?abc?=", &Upper), "ABC");
        assert_eq!(Utf8Latin1.decode("ISO-8859-1", &[0x41, 0xE9, 0x80]), Some("Aé€".into()));
        assert_eq!(Utf8Latin1.decode("shift_jis", b"x"), None);
    }

    fn leaf(mime: &str, headers: Value, data: &[u8]) -> Value {
        json!({"mimeType": mime, "filename": "", "headers": headers,
               "body": {"size": data.len(), "data": URL_SAFE_NO_PAD.encode(data)}})
    }

    #[test]
    fn gmail_json_by_hand() {
        let latin1 = b"Gr\xfc\xdfe aus K\xf6ln\r\nZeile 2";
        let m = json!({
            "id": "abc", "threadId": "thr", "labelIds": ["INBOX", "STARRED"], "snippet": "Gr&#252;&#xDF;e &quot;x&quot;",
            "internalDate": 1_700_000_000_000u64,
            "payload": {
                "mimeType": "multipart/mixed", "filename": "",
                "headers": [
                    {"name": "From", "value": "=?ISO-8859-1?Q?Andr=E9?= Pirard <andre@example.be>"},
                    {"name": "To", "value": "\"Doe, Jane\" <jane@x.com>, bob@x.com, =?UTF-8?B?5p2O?= <li@x.cn>"},
                    {"name": "CC", "value": "undisclosed-recipients:;"},
                    {"name": "Subject", "value": "=?ISO-8859-1?Q?Gr=FC=DFe?= =?UTF-8?B?IOKCrA==?="},
                    {"name": "Message-Id", "value": "<id1@x.com>"},
                    {"name": "Date", "value": "Mon, 1 Jan 2001 00:00:00 +0000"},
                ],
                "body": {"size": 0},
                "parts": [
                    {"mimeType": "multipart/alternative", "filename": "", "headers": [], "body": {"size": 0}, "parts": [
                        leaf("text/plain", json!([{"name": "Content-Type", "value": "text/plain; charset=\"ISO-8859-1\""}]), latin1),
                        leaf("text/html", json!([{"name": "Content-Type", "value": "text/html; charset=UTF-8"}]), "<b>Grüße</b>".as_bytes()),
                    ]},
                    {"mimeType": "application/pdf", "filename": "r€port.pdf",
                     "headers": [{"name": "Content-Disposition", "value": "attachment; filename*=UTF-8''r%E2%82%ACport.pdf"}],
                     "body": {"attachmentId": "ANGjdJ_1", "size": 12345}},
                    {"mimeType": "text/plain", "filename": "",
                     "headers": [{"name": "Content-Disposition", "value": "attachment"}],
                     "body": {"attachmentId": "ANGjdJ_2", "size": 5}},
                ]
            }
        });
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!(
            out,
            json!({
                "id": "abc", "threadId": "thr", "messageId": "<id1@x.com>",
                "from": "André Pirard <andre@example.be>",
                "to": ["Doe, Jane <jane@x.com>", "bob@x.com", "李 <li@x.cn>"], "cc": [], "bcc": [],
                "subject": "Grüße €", "date": "2023-11-14T22:13:20.000Z", "snippet": "Grüße \"x\"",
                "body": "Grüße aus Köln\nZeile 2", "bodyHtml": "<b>Grüße</b>",
                "labelIds": ["INBOX", "STARRED"], "unread": false, "starred": true,
                "attachments": [
                    {"id": "ANGjdJ_1", "filename": "r€port.pdf", "mimeType": "application/pdf", "size": 12345},
                    {"id": "ANGjdJ_2", "filename": "", "mimeType": "text/plain", "size": 5},
                ],
            })
        );
    }

    #[test]
    fn gmail_html_only_nested_and_fallbacks() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body><p>Hi&nbsp;there,</p>\
                    <div>Line&amp;one<br>line &lt;two&gt;</div><!-- c --><script>x()</script><ul><li>a</li><li>b</li></ul>\
                    <p>5 < 6 &#8364; &unknown;</p></body></html>";
        let m = json!({
            "id": "1", "threadId": "1", "snippet": "",
            "payload": {"mimeType": "text/html", "filename": "",
                "headers": [{"name": "Date", "value": "Tue, 14 Nov 2023 17:13:20 EST"},
                            {"name": "Content-Type", "value": "text/html; charset=utf-8"},
                            {"name": "Reply-To", "value": "=?UTF-8?Q?Z=C3=B6e?= <z@x.com>"}],
                "body": {"size": html.len(), "data": URL_SAFE_NO_PAD.encode(html)}}
        });
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!(out["body"], "Hi there,\n\nLine&one\nline <two>\na\nb\n\n5 < 6 € &unknown;");
        assert_eq!(out["bodyHtml"], html);
        assert_eq!(out["date"], "2023-11-14T22:13:20.000Z");
        assert_eq!(out["replyTo"], "Zöe <z@x.com>");
        assert_eq!(out["from"], "");
        assert_eq!(out["messageId"], "");
        assert_eq!(out["labelIds"], json!([]));
        assert_eq!(out["unread"], false);

        // Text only: no bodyHtml / replyTo keys; a forwarded message inside mixed; unknown charset → lossy UTF-8.
        let fwd = json!({"mimeType": "message/rfc822", "filename": "", "headers": [], "body": {"size": 0},
                         "parts": [leaf("text/plain", json!([]), b"inner")]});
        let m = json!({"id": "2", "threadId": "2", "labelIds": ["UNREAD"],
            "payload": {"mimeType": "multipart/mixed", "headers": [], "parts": [
                leaf("text/plain", json!([{"name": "Content-Type", "value": "text/plain; charset=x-unknown"}]), "outer ✓".as_bytes()),
                fwd.clone()]}});
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!(out["body"], "outer ✓");
        assert!(out.get("bodyHtml").is_none() && out.get("replyTo").is_none());
        assert_eq!(out["unread"], true);
        assert_eq!(out["date"], "");
        let m = json!({"id": "3", "payload": {"mimeType": "multipart/mixed", "headers": [], "parts": [fwd]}});
        assert_eq!(message_from_gmail(&m, &Utf8Latin1)["body"], "inner");
        // multipart/related with an inline image: html body, image listed as attachment.
        let m = json!({"id": "4", "payload": {"mimeType": "multipart/related", "headers": [], "parts": [
            leaf("text/html", json!([]), b"<p>x</p>"),
            {"mimeType": "image/png", "filename": "logo.png", "headers": [], "body": {"attachmentId": "img", "size": 3}}]}});
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!((out["body"].as_str(), out["attachments"][0]["id"].as_str()), (Some("x"), Some("img")));
    }

    #[test]
    fn attachment_params_and_boundaries() {
        let param = |attr: &str, v: &str| {
            let mut h = String::new();
            push_param(&mut h, attr, v);
            h
        };
        assert_eq!(param("filename", "€.pdf"), ";\r\n filename*=UTF-8''%E2%82%AC.pdf");
        assert_eq!(param("filename", "report.pdf"), ";\r\n filename=report.pdf");
        assert_eq!(param("filename", "my report; v2.pdf"), ";\r\n filename=\"my report; v2.pdf\"");
        assert_eq!(param("filename", "100% 'quoted' *.txt"), ";\r\n filename=\"100% 'quoted' *.txt\"");
        assert_eq!(param("filename", "tab\there"), ";\r\n filename*=UTF-8''tab%09here");
        assert_eq!(param("filename", ""), "");
        // Continuations never split a character's %XX run.
        let long = param("filename", &"ü".repeat(40));
        assert!(long.contains("filename*0*=UTF-8''%C3%BC") && long.contains("filename*1*=%C3%BC"));
        // Boundaries: distinct per level, none a prefix of another, seed-dependent.
        let seed = [7u8; 16];
        let (a, b) = (boundary(&seed, 0), boundary(&seed, 1));
        assert!(a != b && !a.starts_with(&b) && !b.starts_with(&a) && a.len() == 35);
        assert_ne!(boundary(&[8u8; 16], 0), a);
        // Same input, same bytes (the caller's seed is the only randomness).
        let m =
            Outgoing { attachments: vec![Attachment { filename: "€.pdf".into(), ..Default::default() }], ..base() };
        assert_eq!(build(&m).unwrap(), build(&m).unwrap());
        let s = String::from_utf8(build(&m).unwrap()).unwrap();
        assert!(s.contains("Content-Disposition: attachment;\r\n filename*=UTF-8''%E2%82%AC.pdf\r\n"));
        assert!(s.contains("Content-Type: application/octet-stream;\r\n name*=UTF-8''%E2%82%AC.pdf\r\n"));
        assert!(s.contains("\r\nSubject: Hello\r\n"));
        let msg = parse(s.as_bytes());
        assert_eq!(msg.attachment(0).and_then(|a| a.attachment_name()), Some("€.pdf"));
    }
}
