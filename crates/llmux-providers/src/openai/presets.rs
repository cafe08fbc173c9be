//! OpenAI and OpenAI-compatible vendors as data. Prices are list prices per million
//! tokens as published by each vendor (see `shared/reference/providers.md` 7.12);
//! they change often, so config can override any of them per route.

use llmux_types::Currency;

use crate::{AuthStyle, Preset, Quirks};

/// OpenAI-compatible vendors: stream usage on request; the Responses API only where an
/// entry declares it (`responses_api = true`).
const USAGE: Quirks = Quirks { stream_usage: true, responses_api: false };

/// Regions OpenAI and similar US providers do not serve (their supported-countries
/// pages). Operators can override per provider entry.
const US_PROVIDER_REGIONS: &[&str] = &["!CN", "!HK", "!MO", "!RU", "!BY", "!IR", "!KP", "!SY", "!CU"];

const fn openai_compatible(kind: &'static str, base_url: &'static str, currency: Currency) -> Preset {
    Preset {
        kind,
        adapter: &super::OpenAiAdapter,
        base_url: Some(base_url),
        auth: AuthStyle::Bearer,
        key_required: true,
        regions: &["*"],
        currency,
        prices: &[],
        quirks: USAGE,
        env_key: None,
        cache_write_percent: 100,
    }
}

pub static OPENAI: Preset = Preset {
    regions: US_PROVIDER_REGIONS,
    quirks: Quirks { stream_usage: true, responses_api: true },
    env_key: Some("OPENAI_API_KEY"),
    prices: &[
        ("gpt-5", "1.25", "10", "0.125"),
        ("gpt-5-mini", "0.25", "2", "0.025"),
        ("gpt-5-nano", "0.05", "0.4", "0.005"),
        ("gpt-4.1", "2", "8", "0.5"),
        ("gpt-4.1-mini", "0.4", "1.6", "0.1"),
        ("gpt-4.1-nano", "0.1", "0.4", "0.025"),
        ("gpt-4o", "2.5", "10", "1.25"),
        ("gpt-4o-mini", "0.15", "0.6", "0.075"),
        ("o4-mini", "1.1", "4.4", "0.275"),
        ("o3", "2", "8", "0.5"),
        ("text-embedding-3-small", "0.02", "0", "0.02"),
        ("text-embedding-3-large", "0.13", "0", "0.13"),
    ],
    ..openai_compatible("openai", "https://api.openai.com/v1", Currency::USD)
};

pub static DEEPSEEK: Preset = Preset {
    env_key: Some("DEEPSEEK_API_KEY"),
    prices: &[
        ("deepseek-v4-flash", "1", "2", "0.02"),
        ("deepseek-v4-pro", "3", "6", "0.025"),
        // Legacy names served by v4-flash until their deprecation.
        ("deepseek-chat", "1", "2", "0.02"),
        ("deepseek-reasoner", "1", "2", "0.02"),
    ],
    ..openai_compatible("deepseek", "https://api.deepseek.com/v1", Currency::CNY)
};

/// DashScope compatible mode, mainland (Beijing) endpoint.
pub static QWEN: Preset = Preset {
    env_key: Some("DASHSCOPE_API_KEY"),
    prices: &[
        // Lowest input-length tier (<= 32K for qwen3-max, <= 128K for qwen-flash).
        ("qwen3-max", "2.5", "10", "0.5"),
        ("qwen-flash", "0.15", "1.5", "0.03"),
    ],
    ..openai_compatible("qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1", Currency::CNY)
};

/// DashScope compatible mode, international (Singapore) endpoint; separate keys.
pub static QWEN_INTL: Preset =
    openai_compatible("qwen-intl", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", Currency::USD);

pub static ZHIPU: Preset = Preset {
    env_key: Some("ZHIPUAI_API_KEY"),
    ..openai_compatible("zhipu", "https://open.bigmodel.cn/api/paas/v4", Currency::CNY)
};

/// Zhipu's international platform (Z.ai).
pub static ZAI: Preset = openai_compatible("zai", "https://api.z.ai/api/paas/v4", Currency::USD);

pub static MOONSHOT: Preset = Preset {
    env_key: Some("MOONSHOT_API_KEY"),
    ..openai_compatible("moonshot", "https://api.moonshot.cn/v1", Currency::CNY)
};

pub static MOONSHOT_INTL: Preset = Preset {
    prices: &[("kimi-k2.5", "0.6", "3", "0.1"), ("kimi-k2-0905-preview", "0.6", "2.5", "0.15")],
    ..openai_compatible("moonshot-intl", "https://api.moonshot.ai/v1", Currency::USD)
};

/// Volcengine Ark. The route `model` may be a model id or an endpoint id (`ep-...`).
pub static DOUBAO: Preset = Preset {
    env_key: Some("ARK_API_KEY"),
    ..openai_compatible("doubao", "https://ark.cn-beijing.volces.com/api/v3", Currency::CNY)
};

pub static MINIMAX: Preset = Preset {
    env_key: Some("MINIMAX_API_KEY"),
    ..openai_compatible("minimax", "https://api.minimaxi.com/v1", Currency::CNY)
};

pub static MINIMAX_INTL: Preset = openai_compatible("minimax-intl", "https://api.minimax.io/v1", Currency::USD);

pub static SILICONFLOW: Preset = Preset {
    env_key: Some("SILICONFLOW_API_KEY"),
    ..openai_compatible("siliconflow", "https://api.siliconflow.cn/v1", Currency::CNY)
};

pub static SILICONFLOW_INTL: Preset =
    openai_compatible("siliconflow-intl", "https://api.siliconflow.com/v1", Currency::USD);

/// Local Ollama; no key needed.
pub static OLLAMA: Preset =
    Preset { key_required: false, ..openai_compatible("ollama", "http://127.0.0.1:11434/v1", Currency::USD) };

/// vLLM: the base URL is the operator's server; a key only if started with `--api-key`.
pub static VLLM: Preset =
    Preset { base_url: None, key_required: false, ..openai_compatible("vllm", "", Currency::USD) };

/// Any other OpenAI-compatible server.
pub static OPENAI_COMPATIBLE: Preset =
    Preset { base_url: None, key_required: false, ..openai_compatible("openai-compatible", "", Currency::USD) };
