//! The v2 refund notify (reference: wxpay-refund-bill.md §3): unsigned XML whose `req_info` is
//! base64(AES-256-ECB(PKCS#7(`<root>…</root>`))) under the key = lowercase hex MD5 of the API key.
//! There is no `sign`: decrypting with our key is the proof it came from WeChat, so every check
//! here runs before anything is believed, and a body that fails one changes nothing.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyInit};
use base64::Engine as _;
use md5::{Digest, Md5};

use super::refund::RefundState;
use super::xml::{self, Params, XmlError};
use super::Merchant;

type Enc = ecb::Encryptor<aes::Aes256>;
type Dec = ecb::Decryptor<aes::Aes256>;

/// A refund's outcome as WeChat announced it, decrypted and checked against our merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotify {
    pub out_refund_no: String,
    pub refund_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    pub refund_fee: i64,
    pub state: RefundState,
    /// Beijing `yyyy-MM-dd HH:mm:ss`, on SUCCESS.
    pub success_time: Option<String>,
    pub recv_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundNotifyError {
    #[error("unreadable notify: {0}")]
    Xml(#[from] XmlError),
    #[error("WeChat reported a failure: {0}")]
    ReturnFail(String),
    #[error("appid/mch_id do not name this merchant")]
    WrongMerchant,
    #[error("no req_info")]
    NoReqInfo,
    /// Not base64, not whole blocks, bad padding (the wrong key), or not UTF-8.
    #[error("req_info does not decrypt with this merchant's key")]
    Undecryptable,
    #[error("missing or malformed field {0}")]
    Field(&'static str),
}

/// The AES-256 key: the 32 ASCII bytes of the lowercase hex MD5 of the v2 API key (not the raw
/// key, not the APIv3 key: the mistakes SDK users make most).
pub fn aes_key(api_key: &str) -> [u8; 32] {
    let digest = Md5::digest(api_key.as_bytes());
    let mut key = [0u8; 32];
    for (i, b) in digest.iter().enumerate() {
        let hex = format!("{b:02x}");
        key[2 * i..2 * i + 2].copy_from_slice(hex.as_bytes());
    }
    key
}

/// base64(AES-256-ECB(PKCS#7(plaintext))) — what WeChat (and the sandbox) puts in `req_info`.
pub fn encrypt_req_info(api_key: &str, plaintext: &str) -> String {
    let ct =
        Enc::new(&aes_key(api_key).into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ct)
}

/// The inverse; any failure means "not from WeChat for this merchant".
pub fn decrypt_req_info(api_key: &str, req_info: &str) -> Result<String, RefundNotifyError> {
    let ct = base64::engine::general_purpose::STANDARD
        .decode(req_info.trim())
        .map_err(|_| RefundNotifyError::Undecryptable)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(RefundNotifyError::Undecryptable);
    }
    let pt = Dec::new(&aes_key(api_key).into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ct)
        .map_err(|_| RefundNotifyError::Undecryptable)?;
    String::from_utf8(pt).map_err(|_| RefundNotifyError::Undecryptable)
}

/// The decrypted `<root>` document's fields as WeChat writes them (CDATA, one per line).
pub fn to_root_xml(p: &Params) -> String {
    let mut out = String::from("<root>\n");
    for (k, v) in p {
        out.push_str(&format!(
            "<{k}><![CDATA[{}]]></{k}>\n",
            v.replace("]]>", "]]]]><![CDATA[>")
        ));
    }
    out.push_str("</root>");
    out
}

/// Reads a refund notify: the outer XML, our appid/mch_id, then `req_info` decrypted and read.
pub fn parse(body: &[u8], m: &Merchant) -> Result<RefundNotify, RefundNotifyError> {
    let outer = xml::parse(body)?;
    if outer.get("return_code").map(String::as_str) != Some("SUCCESS") {
        // A FAIL carries no req_info (WxJava crashed on it once): nothing to apply.
        let msg = outer.get("return_msg").cloned().unwrap_or_default();
        return Err(RefundNotifyError::ReturnFail(msg));
    }
    if outer.get("appid") != Some(&m.appid) || outer.get("mch_id") != Some(&m.mch_id) {
        return Err(RefundNotifyError::WrongMerchant);
    }
    let req_info = outer
        .get("req_info")
        .filter(|v| !v.is_empty())
        .ok_or(RefundNotifyError::NoReqInfo)?;
    let plain = decrypt_req_info(m.api_key.expose(), req_info)?;
    let inner = xml::parse_rooted(plain.as_bytes(), "root")?;
    read_inner(&inner)
}

fn read_inner(p: &Params) -> Result<RefundNotify, RefundNotifyError> {
    let text = |k: &'static str| {
        p.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(RefundNotifyError::Field(k))
    };
    let fen = |k: &'static str| -> Result<i64, RefundNotifyError> {
        text(k)?
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or(RefundNotifyError::Field(k))
    };
    Ok(RefundNotify {
        out_refund_no: text("out_refund_no")?,
        refund_id: text("refund_id")?,
        out_trade_no: text("out_trade_no")?,
        transaction_id: text("transaction_id")?,
        total_fee: fen("total_fee")?,
        refund_fee: fen("refund_fee")?,
        state: RefundState::parse(&text("refund_status")?),
        success_time: text("success_time").ok(),
        recv_account: text("refund_recv_accout").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::wxpay::{ApiKey, SignType};

    // R-T1: wechatpy's tests/test_crypto.py::test_refund_notify_decrypt_message.
    const WECHATPY_KEY: &str = "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk";
    const WECHATPY_REQ_INFO: &str = "51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlVFL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFHJ795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Qa99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlhhen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4OqkmO0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFlS2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JLjpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGmbFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCIa7OnOQb5Lvw=";

    // R-C1: computed for the reference with the doc-style key.
    const DOC_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
    const DOC_REQ_INFO: &str = "4gS8kbcHysCW7bHqyEU0M9umdFVGKPOUBs+y0jA3Blg38QNZN+Ke24ZVdDi+UNeVAWsJuOJibMtOg0xUQPkJeMciCQysLCjHDLsa2ZuUjYeEuYUy2mRGagZt+o63AmqazCOpMIMWsQyJ1E1GKPpu4PnVO1GCIKDY8KeJPfKxrsNq7qvOEJh8DdMfO6BlGqSFalUHJ4+oV/CmpC59BHda9uzUyI41qfDPxbZYeu6QQG6xHpEPFyIbrm+Kx7BlKTUQ7HiJy1hTtXWRqJxg6QCPsQJl8R8LxOO1op72+t79jiKsw3Y4jkohUYNjaz3K3khOfMCcWH+Vp4YRKKyMGtzqcpyMhzrllcJLINwiF1/fkSjUJPesFGmbGg/dT5WIVkg2R+HtCoFCBKZilVK+8g5ZYpgXRWRhqp3Gw+0xdK3xWe8AyvXUOLULHfLVx9JAqMukyG6yu6kHksGHbhDASGyOhliWyGP6UN6F/8uSUgcdTEEvZn37H9y4++1zLZfDShydUj8RH68A4ehjvkIsTIjA8xjtzwa6nz9Zm1/elohtPQWq1Rsr8ogUAtWfz8pOW46RmJEbdhs0Xj9oeHn+d+lmRFf8aPaprZvWwEgRUsBo0AK1SBA5Bnc91SkId7nYP8CD/Lr6hqAKzYF/5Wf9+75v0iSQ7c2RA8xEW/rkyJ2JW8v+y8Gvh7eVLcDtqCwGCTlDmQkNZKVjpCmIcn5X0yE2MuEzSnuf/h1k9rIawNuQloxQXzDdbKEa7t0lJm0S1gpD2Fgkh0WjhEs1161QcrC5yHph5INg6uoxHQRmbePFvtP8GsdUSex1pyEhGh0HYcWqWH5U5WBshQx8y5UlHPjzjJ8mFKYlkQQZVDg3MqP06njro+tMtOVyA8RXpdvU4TgtKCDsfNnEsuBJTwE82wuAixblpPmiI/7QfCe/zixYAOStAV9YtXcrJlhbqAyO1M5+31uYTcnNWKXLUpEsU12PEbYMHXOPX0nMFrRE8Go4dDRpx+TNV7PqAoRka31LO7wMeROC6/qXmThgOTHAj9iEQGNw4U7+ikJhsHkXTdUvycJibCH4pohj+14j7FERSSfu";

    fn merchant(key: &str) -> Merchant {
        Merchant {
            appid: "wx4f4bc4dec97d474b".into(),
            mch_id: "12345678".into(),
            api_key: ApiKey::new(key),
            sign_type: SignType::Md5,
        }
    }

    fn outer(appid: &str, mch_id: &str, req_info: &str) -> String {
        format!(
            "<xml><return_code>SUCCESS</return_code><appid><![CDATA[{appid}]]></appid>\
             <mch_id><![CDATA[{mch_id}]]></mch_id><nonce_str><![CDATA[c1c237efc87ee8dfcb3f9124b63a4d94]]></nonce_str>\
             <req_info><![CDATA[{req_info}]]></req_info></xml>"
        )
    }

    #[test]
    fn the_key_is_the_hex_md5_of_the_api_key() {
        assert_eq!(&aes_key(WECHATPY_KEY), b"63dfc0c1f53d9bc83a8fdc365b8141da");
        assert_eq!(&aes_key(DOC_KEY), b"d96eb16afdd491fa1e705096edbc2205");
    }

    #[test]
    fn aes_256_ecb_matches_wechatpay_php() {
        // R-T2: the primitive with a raw 32-byte key (no MD5), as wechatpay-php's AesEcbTest.
        let key = *b"0123456789abcdef0123456789abcdef";
        let ct = Enc::new(&key.into()).encrypt_padded_vec_mut::<Pkcs7>(b"hello");
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(ct),
            "pZwJZBLuy3mDACEQT4YTBw=="
        );
    }

    #[test]
    fn wechatpys_vector_decrypts_to_its_refund() {
        let n = parse(
            outer("wx4f4bc4dec97d474b", "12345678", WECHATPY_REQ_INFO).as_bytes(),
            &merchant(WECHATPY_KEY),
        )
        .unwrap();
        assert_eq!(n.out_refund_no, "1234");
        assert_eq!(n.out_trade_no, "2020010418301551404339261814");
        assert_eq!(n.refund_id, "50300103182020010413419046597");
        assert_eq!(n.transaction_id, "4200000483202001042069747825");
        assert_eq!((n.total_fee, n.refund_fee), (1, 1));
        assert_eq!(n.state, RefundState::Success);
        assert_eq!(n.success_time.as_deref(), Some("2020-01-04 18:34:24"));
        assert_eq!(n.recv_account.as_deref(), Some("招商银行信用卡8915"));
    }

    #[test]
    fn the_reference_vector_decrypts_and_round_trips() {
        let plain = decrypt_req_info(DOC_KEY, DOC_REQ_INFO).unwrap();
        assert!(plain.starts_with(
            "<root>\n<out_refund_no><![CDATA[R4001312001201707262674894706_4]]></out_refund_no>\n"
        ));
        assert!(plain.ends_with(
            "<transaction_id><![CDATA[4001312001201707262674894706]]></transaction_id>\n</root>"
        ));
        // The same plaintext under the same key is the same ciphertext (ECB has no IV).
        assert_eq!(encrypt_req_info(DOC_KEY, &plain), DOC_REQ_INFO);
        let inner = xml::parse_rooted(plain.as_bytes(), "root").unwrap();
        let n = read_inner(&inner).unwrap();
        assert_eq!((n.total_fee, n.refund_fee), (100, 15));
        assert_eq!(n.recv_account.as_deref(), Some("用户零钱"));
        // What the sandbox writes reads back the same.
        let again =
            decrypt_req_info(DOC_KEY, &encrypt_req_info(DOC_KEY, &to_root_xml(&inner))).unwrap();
        assert_eq!(xml::parse_rooted(again.as_bytes(), "root").unwrap(), inner);
    }

    #[test]
    fn forged_notifies_are_refused() {
        let m = merchant(WECHATPY_KEY);
        // Another merchant's ids, even with our ciphertext.
        let other = outer("wx4f4bc4dec97d474b", "99999999", WECHATPY_REQ_INFO);
        assert_eq!(
            parse(other.as_bytes(), &m),
            Err(RefundNotifyError::WrongMerchant)
        );
        // Encrypted under another key (the raw API key instead of its MD5 is the classic slip).
        assert_eq!(
            parse(
                outer("wx4f4bc4dec97d474b", "12345678", DOC_REQ_INFO).as_bytes(),
                &m
            ),
            Err(RefundNotifyError::Undecryptable)
        );
        // Tampered: one block flipped, or cut short, or not base64.
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(WECHATPY_REQ_INFO)
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        let flipped = base64::engine::general_purpose::STANDARD.encode(&bytes);
        for bad in [flipped.as_str(), &WECHATPY_REQ_INFO[..100], "not base64!"] {
            let r = parse(outer("wx4f4bc4dec97d474b", "12345678", bad).as_bytes(), &m);
            assert_eq!(r, Err(RefundNotifyError::Undecryptable), "{bad}");
        }
        // A FAIL has no req_info and is not an outcome.
        let fail = "<xml><return_code>FAIL</return_code><return_msg>oops</return_msg></xml>";
        assert_eq!(
            parse(fail.as_bytes(), &m),
            Err(RefundNotifyError::ReturnFail("oops".into()))
        );
        // A pay notify fed to the refund parser.
        let pay = "<xml><return_code>SUCCESS</return_code><appid>wx4f4bc4dec97d474b</appid><mch_id>12345678</mch_id><result_code>SUCCESS</result_code></xml>";
        assert_eq!(parse(pay.as_bytes(), &m), Err(RefundNotifyError::NoReqInfo));
    }
}
