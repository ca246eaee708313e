using Xunit.Abstractions;

namespace ModelCompiler.Tests.Oracles;

/// <summary>
/// Each Hugging Face family written in the DSL, run through <c>mc eval</c> exactly as a user would, against the
/// oracle's reference outputs (tests/oracles/&lt;family&gt;, made by transformers on tiny random-weight models):
/// logits to a relative error of 1e-4 and, where the oracle has them, the greedy tokens exactly.
/// </summary>
public sealed class ZooOracleTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("mistral_swa", "mistral.arch")]
    [InlineData("mixtral_moe", "mixtral.arch")]
    [InlineData("bloom", "bloom.arch")]
    [InlineData("bert", "bert.arch")]
    [InlineData("t5", "t5.arch")]
    // Variants generated with the same recipe for the options the shared oracles leave untested.
    [InlineData("bloom_alibi6", "bloom.arch")]      // 6 heads: ALiBi slopes for a head count that is not a power of two
    [InlineData("bloom_postres", "bloom.arch")]     // apply_residual_connection_post_layernorm
    [InlineData("t5_geglu", "t5.arch")]             // gated-gelu MLP (wi_0/wi_1), decoder output not scaled
    public void MatchesHuggingFace(string family, string arch)
    {
        double relative = OracleCheck.Run(family, OracleCheck.Example(arch), OracleCheck.Folder(family));
        output.WriteLine($"{family}: relative logits error {relative:E3}");
    }
}
