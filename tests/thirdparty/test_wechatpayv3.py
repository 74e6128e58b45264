"""wechatpayv3 (a widely used third-party WeChat Pay API v3 client) drives scanpay's sandbox.

Its own code signs the requests (the sandbox verifies them), verifies every answer with the WeChat
Pay public key, and verifies and decrypts the notify: an implementation we did not write holds the
simulator to the protocol, as wechatpy does for v2. The only change a merchant makes is the
gateway (WeChat's host → the sandbox's).
"""
import gzip
import hashlib
import json
import os
import pathlib
import re
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from wechatpayv3 import WeChatPay, WeChatPayType

BASE = os.environ["SCANPAY_URL"]  # e.g. http://127.0.0.1:3410
APPID = os.environ.get("SCANPAY_WXPAY_APPID", "wx5a4d1ba6b7c8e9f0")
MCH_ID = os.environ.get("SCANPAY_WXPAY_MCH_ID", "1900000109")
THROWAWAY = (pathlib.Path(__file__).resolve().parents[2] / "src/server/wxpay/v3/throwaway.rs").read_text()


def throwaway(name):
    """The sandbox merchant's published throwaway credentials, as the Rust source holds them."""
    return re.search(r'pub const %s: &str = "(.*?)";' % name, THROWAWAY, re.S).group(1)


KEY = throwaway("SANDBOX_MERCHANT_KEY")
SERIAL = throwaway("SANDBOX_MERCHANT_SERIAL")
APIV3_KEY = throwaway("SANDBOX_APIV3_KEY")
BEIJING = timezone(timedelta(hours=8))


class NotifySink(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        NotifySink.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def notify_url():
    server = HTTPServer(("127.0.0.1", 0), NotifySink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/notify" % server.server_port
    server.shutdown()


@pytest.fixture(scope="module")
def pay(notify_url):
    # The merchant platform's download: the WeChat Pay public key and its id.
    with urllib.request.urlopen(BASE + "/sandbox/admin/v3/public-key", timeout=5) as r:
        keys = json.loads(r.read())
    client = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE, mchid=MCH_ID, private_key=KEY, cert_serial_no=SERIAL,
        appid=APPID, apiv3_key=APIV3_KEY, notify_url=notify_url, timeout=(5, 10),
        public_key=keys["public_key_pem"], public_key_id=keys["public_key_id"],
    )
    client._core._gate_way = BASE  # the only change a merchant makes: the sandbox for WeChat
    return client


def out_trade_no(tag):
    return "WV%s%d" % (tag, int(time.time() * 1000))


def scan_and_pay(code_url):
    """What the shopper's phone does: open the code, press Pay."""
    data = urllib.parse.urlencode({"code_url": code_url}).encode()
    with urllib.request.urlopen(BASE + "/sandbox/scan/pay", data=data, timeout=5) as r:
        assert b"Payment complete" in r.read()


def test_native_order_query_pay_and_the_notify(pay):
    no = out_trade_no("A")
    expire = (datetime.now(BEIJING) + timedelta(minutes=30)).replace(microsecond=0).isoformat()
    code, body = pay.pay(description="测试商品 tea", out_trade_no=no, amount={"total": 101},
                         time_expire=expire, attach="x=1&y=2")
    assert code == 200, body
    code_url = json.loads(body)["code_url"]
    assert code_url.startswith("weixin://wxpay/bizpayurl")
    # The same parameters again: the same payment. Others under the number: refused.
    assert json.loads(pay.pay(description="测试商品 tea", out_trade_no=no, amount={"total": 101},
                              time_expire=expire, attach="x=1&y=2")[1])["code_url"] == code_url
    code, body = pay.pay(description="测试商品 tea", out_trade_no=no, amount={"total": 102})
    assert (code, json.loads(body)["code"]) == (403, "OUT_TRADE_NO_USED")

    code, body = pay.query(out_trade_no=no)
    assert code == 200 and json.loads(body)["trade_state"] == "NOTPAY"
    scan_and_pay(code_url)
    code, body = pay.query(out_trade_no=no)
    t = json.loads(body)
    assert (t["trade_state"], t["amount"]["total"], t["attach"]) == ("SUCCESS", 101, "x=1&y=2")
    assert t["transaction_id"].startswith("42") and t["success_time"].endswith("+08:00")
    # By WeChat's number too.
    code, body = pay.query(transaction_id=t["transaction_id"])
    assert code == 200 and json.loads(body)["out_trade_no"] == no

    # The notify: wechatpayv3 verifies its signature and decrypts its resource.
    deadline = time.time() + 10
    while time.time() < deadline and not NotifySink.received:
        time.sleep(0.05)
    headers, raw = NotifySink.received[-1]
    result = pay.callback(headers, raw)
    assert result is not None, "the notify did not verify or decrypt"
    assert result["event_type"] == "TRANSACTION.SUCCESS"
    resource = result["resource"]
    assert (resource["out_trade_no"], resource["transaction_id"]) == (no, t["transaction_id"])
    assert resource["amount"]["total"] == 101
    # The same body, one byte changed: refused.
    assert pay.callback(headers, raw.replace(b'"id"', b'"Id"')) is None

    # Paid: not closable.
    code, body = pay.close(out_trade_no=no)
    assert (code, json.loads(body)["code"]) == (400, "ORDER_PAID")


def test_close_floor_unknown_and_refund(pay):
    no = out_trade_no("C")
    assert pay.pay(description="tea", out_trade_no=no, amount={"total": 55})[0] == 200
    # Within WeChat's close floor (five minutes after the order): refused, the order still open.
    code, body = pay.close(out_trade_no=no)
    assert (code, json.loads(body)["code"]) == (400, "INVALID_REQUEST"), body
    assert json.loads(pay.query(out_trade_no=no)[1])["trade_state"] == "NOTPAY"
    code, body = pay.query(out_trade_no=out_trade_no("N"))
    assert (code, json.loads(body)["code"]) == (404, "ORDER_NOT_EXIST")

    paid = out_trade_no("R")
    code, body = pay.pay(description="tea", out_trade_no=paid, amount={"total": 300})
    scan_and_pay(json.loads(body)["code_url"])
    txn = json.loads(pay.query(out_trade_no=paid)[1])["transaction_id"]
    refund_no = paid + "R01"
    code, body = pay.refund(out_refund_no=refund_no, transaction_id=txn,
                            amount={"refund": 120, "total": 300, "currency": "CNY"}, reason="退货")
    assert code == 200, body
    r = json.loads(body)
    assert (r["status"], r["amount"]["refund"], r["out_refund_no"]) == ("PROCESSING", 120, refund_no)
    # Sent again: the same refund.
    assert json.loads(pay.refund(out_refund_no=refund_no, transaction_id=txn,
                                 amount={"refund": 120, "total": 300, "currency": "CNY"},
                                 reason="退货")[1])["refund_id"] == r["refund_id"]
    code, body = pay.query_refund(out_refund_no=refund_no)
    assert code == 200 and json.loads(body)["refund_id"] == r["refund_id"]
    code, body = pay.query_refund(out_refund_no=paid + "R99")
    assert (code, json.loads(body)["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_trade_bill(pay):
    today = datetime.now(BEIJING).strftime("%Y-%m-%d")
    # run.sh makes the sandbox's bills ready at once (WeChat: the next morning).
    code, body = pay.trade_bill(bill_date=today)
    assert code == 200, body
    answer = json.loads(body)
    assert answer["hash_type"] == "SHA1"
    code, content = pay.download_bill(answer["download_url"])
    assert code == 200
    text = gzip.decompress(content)
    assert hashlib.sha1(text).hexdigest() == answer["hash_value"]
    assert "交易时间".encode() in text and "总交易单数".encode() in text
    code, body = pay.trade_bill(bill_date="2000-01-01")
    assert (code, json.loads(body)["code"]) == (400, "NO_STATEMENT_EXIST")
