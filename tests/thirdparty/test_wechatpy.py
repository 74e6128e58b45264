"""wechatpy (a widely used third-party WeChat Pay v2 client) drives scanpay's sandbox unchanged.

Signatures are checked both ways: the sandbox verifies wechatpy's signed requests, and we verify
the sandbox's signed answers and notifies with wechatpy's own signature code.
"""
import os
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

BASE = os.environ["SCANPAY_URL"]  # e.g. http://127.0.0.1:3410
APPID = os.environ.get("SCANPAY_WXPAY_APPID", "wx5a4d1ba6b7c8e9f0")
MCH_ID = os.environ.get("SCANPAY_WXPAY_MCH_ID", "1900000109")
API_KEY = os.environ.get("SCANPAY_WXPAY_API_KEY", "sandbox0api0key0not0a0secret0000")


def client(key=API_KEY):
    pay = WeChatPay(appid=APPID, api_key=key, mch_id=MCH_ID, timeout=5)
    pay.API_BASE_URL = BASE + "/sandbox/"  # the only change a merchant makes
    return pay


def response_signature_ok(data, sign_type="MD5"):
    data = dict(data)
    sign = data.pop("sign")
    calc = calculate_signature_hmac if sign_type == "HMAC-SHA256" else calculate_signature
    return calc(data, API_KEY) == sign


class NotifySink(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        NotifySink.received.append(body)
        reply = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def notify_url():
    server = HTTPServer(("127.0.0.1", 0), NotifySink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/notify" % server.server_port
    server.shutdown()


def wait_for_notify(what, matches, seconds=5):
    """The first notify received that `matches` (bytes -> bool): notifies of other orders, or a
    pay notify's late retry, may arrive in any order beside the one a test waits for."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for body in list(NotifySink.received):
            if matches(body):
                return body
        time.sleep(0.05)
    raise AssertionError("the sandbox posted %s" % what)


def out_trade_no(tag):
    return "WP%s%d" % (tag, int(time.time() * 1000))


def scan_and_pay(code_url):
    """What the shopper's phone does: open the code, press Pay."""
    data = urllib.parse.urlencode({"code_url": code_url}).encode()
    with urllib.request.urlopen(BASE + "/sandbox/scan/pay", data=data, timeout=5) as r:
        assert b"Payment complete" in r.read()


def test_native_order_query_pay_notify(notify_url):
    pay = client()
    no = out_trade_no("A")
    res = pay.order.create(
        trade_type="NATIVE", body="测试商品 & <tea>", total_fee=101, notify_url=notify_url,
        client_ip="127.0.0.1", out_trade_no=no, product_id="TEA-OOLONG", attach="x=1&y=2",
    )
    assert res["return_code"] == "SUCCESS" and res["result_code"] == "SUCCESS"
    assert res["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert response_signature_ok(res)

    q = pay.order.query(out_trade_no=no)
    assert q["trade_state"] == "NOTPAY" and response_signature_ok(q)

    scan_and_pay(res["code_url"])
    body = wait_for_notify("the pay notify", lambda b: no.encode() in b)
    result = pay.parse_payment_result(body)  # raises on a bad signature
    assert result["out_trade_no"] == no and result["total_fee"] == 101
    assert result["attach"] == "x=1&y=2"

    q = pay.order.query(out_trade_no=no)
    assert q["trade_state"] == "SUCCESS" and q["transaction_id"] == result["transaction_id"]
    assert response_signature_ok(q)
    q2 = pay.order.query(transaction_id=result["transaction_id"])
    assert q2["out_trade_no"] == no


def test_hmac_sha256_requests_get_hmac_answers(notify_url):
    pay = client()
    res = pay.order.create(
        trade_type="NATIVE", body="tea", total_fee=1, notify_url=notify_url, client_ip="127.0.0.1",
        out_trade_no=out_trade_no("H"), product_id="P1", sign_type="HMAC-SHA256",
    )
    assert len(res["sign"]) == 64 and response_signature_ok(res, "HMAC-SHA256")


def test_business_errors(notify_url):
    pay = client()
    no = out_trade_no("E")
    pay.order.create(trade_type="NATIVE", body="tea", total_fee=5, notify_url=notify_url,
                     client_ip="127.0.0.1", out_trade_no=no, product_id="P1")
    with pytest.raises(WeChatPayException) as e:
        pay.order.create(trade_type="NATIVE", body="tea", total_fee=6, notify_url=notify_url,
                         client_ip="127.0.0.1", out_trade_no=no, product_id="P1")
    assert e.value.errcode == "OUT_TRADE_NO_USED"
    with pytest.raises(WeChatPayException) as e:
        pay.order.close(no)  # within the close floor
    assert e.value.errcode == "INVALID_REQUEST"
    with pytest.raises(WeChatPayException) as e:
        pay.order.query(out_trade_no="WP-NEVER-MADE")
    assert e.value.errcode == "ORDERNOTEXIST"
    with pytest.raises(WeChatPayException) as e:
        pay.order.create(trade_type="NATIVE", body="tea", total_fee=5, notify_url=notify_url,
                         client_ip="127.0.0.1", out_trade_no=out_trade_no("N"))  # no product_id
    assert e.value.errcode == "LACK_PARAMS"


def test_wrong_key_is_refused_without_a_signature():
    with pytest.raises(WeChatPayException) as e:
        client("0" * 32).order.query(out_trade_no="WP-ANY")
    assert e.value.return_code == "FAIL" and e.value.return_msg == "签名错误"


def test_refund_query_and_the_encrypted_refund_notify(notify_url):
    """wechatpy's refund calls and its WeChatRefundCrypto read what the sandbox does."""
    from wechatpy.crypto import WeChatRefundCrypto

    pay = client()
    no = out_trade_no("R")
    res = pay.order.create(trade_type="NATIVE", body="tea", total_fee=300, notify_url=notify_url,
                           client_ip="127.0.0.1", out_trade_no=no, product_id="P1")
    scan_and_pay(res["code_url"])
    txn = pay.order.query(out_trade_no=no)["transaction_id"]

    r = pay.refund.apply(total_fee=300, refund_fee=100, out_refund_no=no + "R1",
                         transaction_id=txn, notify_url=notify_url, refund_desc="broken")
    assert r["result_code"] == "SUCCESS" and r["refund_fee"] == "100" and response_signature_ok(r)
    assert r["refund_id"].startswith("50")
    # The same number again is the same refund; other amounts under it are refused.
    again = pay.refund.apply(total_fee=300, refund_fee=100, out_refund_no=no + "R1", transaction_id=txn)
    assert again["refund_id"] == r["refund_id"]
    with pytest.raises(WeChatPayException) as e:
        pay.refund.apply(total_fee=300, refund_fee=150, out_refund_no=no + "R1", transaction_id=txn)
    assert "不一致" in (e.value.errmsg or "")
    with pytest.raises(WeChatPayException) as e:
        pay.refund.apply(total_fee=300, refund_fee=301, out_refund_no=no + "R9", transaction_id=txn)
    assert e.value.return_code == "FAIL" or e.value.errcode, "more than the payment is refused"

    # The refund notify: unsigned, req_info decrypted by wechatpy's own code.
    # (The pay notify, or a retry of it, may arrive after the refund's: the refund notify is the
    # one with a req_info, the encrypted part, that decrypts to this refund.)
    def this_refund(b):
        return (b"<req_info>" in b and WeChatRefundCrypto(API_KEY)
                .decrypt_message(b, APPID, MCH_ID)["out_refund_no"] == no + "R1")
    body = wait_for_notify("the refund notify", this_refund)
    assert b"<sign>" not in body
    info = WeChatRefundCrypto(API_KEY).decrypt_message(body, APPID, MCH_ID)
    assert info["out_refund_no"] == no + "R1" and info["refund_status"] == "SUCCESS"
    assert info["refund_fee"] == "100" and info["out_trade_no"] == no

    q = pay.refund.query(out_refund_no=no + "R1")
    assert response_signature_ok(q)
    assert q["refund_count"] == "1" and q["refund_status_0"] == "SUCCESS"
    assert q["refund_id_0"] == r["refund_id"] and q["refund_fee_0"] == "100"
    assert pay.order.query(out_trade_no=no)["trade_state"] == "REFUND"
    with pytest.raises(WeChatPayException) as e:
        pay.refund.query(out_refund_no="WP-NO-SUCH-REFUND")
    assert e.value.errcode == "REFUNDNOTEXIST"
