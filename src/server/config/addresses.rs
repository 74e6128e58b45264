//! Where things are reached: the notify URLs WeChat is given, the sandbox's phone page, and the
//! rule that a process among several must be told its public address.

use super::{is_wechat_host, ConfigError, Role, Settings, WxPayApi};

impl Settings {
    /// A process that is one of several (`--role web|worker`) cannot assume that its own listen
    /// address is where shoppers and WeChat reach the deployment: it must be told.
    pub fn check_role(&self) -> Result<(), ConfigError> {
        if self.role != Role::All && !self.public_url_set {
            return Err(ConfigError(
                "SCANPAY_PUBLIC_URL: must be set for --role web or --role worker (the address \
                 shoppers and WeChat reach the web processes at; with the in-process sandbox, \
                 WeChat's base is <public_url>/sandbox/)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Where WeChat (or the sandbox) posts pay results.
    pub fn notify_url(&self) -> String {
        match self.wxpay_api {
            WxPayApi::V2 => format!("{}/wxpay/notify", self.public_url),
            WxPayApi::V3 => format!("{}/wxpay/v3/notify", self.public_url),
        }
    }

    /// Where the sandbox's phone page is, for the checkout's "pay with the sandbox" link: this
    /// process's `/sandbox/`, or a sandbox running as its own process that
    /// `SCANPAY_WXPAY_BASE_URL` names (any base ending in `/sandbox/` that is not WeChat's).
    pub fn sandbox_phone_base(&self) -> Option<String> {
        if self.sandbox {
            Some("/sandbox/".into())
        } else if self.wxpay_base_url.ends_with("/sandbox/")
            && !is_wechat_host(&self.wxpay_base_url)
        {
            Some(self.wxpay_base_url.clone())
        } else {
            None
        }
    }

    /// Where WeChat posts refund results (sent as every refund's notify_url; v3 posts pay and
    /// refund results to one endpoint, told apart by their event type).
    pub fn refund_notify_url(&self) -> String {
        match self.wxpay_api {
            WxPayApi::V2 => format!("{}/wxpay/refund-notify", self.public_url),
            WxPayApi::V3 => format!("{}/wxpay/v3/notify", self.public_url),
        }
    }
}
