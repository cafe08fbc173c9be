//! Provider kinds by name: one line per kind.

use crate::Preset;

static PRESETS: &[&Preset] = &[
    &crate::mock::PRESET,
    &crate::openai::presets::OPENAI,
    &crate::azure::PRESET,
    &crate::anthropic::PRESET,
    &crate::gemini::PRESET,
    &crate::openai::presets::DEEPSEEK,
    &crate::openai::presets::QWEN,
    &crate::openai::presets::QWEN_INTL,
    &crate::openai::presets::ZHIPU,
    &crate::openai::presets::ZAI,
    &crate::openai::presets::MOONSHOT,
    &crate::openai::presets::MOONSHOT_INTL,
    &crate::openai::presets::DOUBAO,
    &crate::openai::presets::MINIMAX,
    &crate::openai::presets::MINIMAX_INTL,
    &crate::openai::presets::SILICONFLOW,
    &crate::openai::presets::SILICONFLOW_INTL,
    &crate::openai::presets::OLLAMA,
    &crate::openai::presets::VLLM,
    &crate::openai::presets::OPENAI_COMPATIBLE,
];

/// The preset of `kind`.
pub fn preset(kind: &str) -> Option<&'static Preset> {
    PRESETS.iter().copied().find(|preset| preset.kind == kind)
}

/// All known kinds, in registry order.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|preset| preset.kind)
}

/// All presets, in registry order.
pub fn presets() -> impl Iterator<Item = &'static Preset> {
    PRESETS.iter().copied()
}
