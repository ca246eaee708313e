using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ModelCompiler.Runtime.Gguf;

/// <summary>
/// What llama.cpp's convert_hf_to_gguf.py did to a LLaMA checkpoint, undone: its metadata keys back to a Hugging Face
/// config.json, its tensor names back to Hugging Face names. (Its Q/K row permutation is undone by <see cref="GgufWeights"/>.)
/// </summary>
public static partial class GgufLlama
{
    public const string Architecture = "llama";

    /// <summary>GGUF tensor name → Hugging Face name; null for a name this mapping does not know (kept as it is).</summary>
    public static string? HfName(string gguf)
    {
        switch (gguf)
        {
            case "token_embd.weight": return "model.embed_tokens.weight";
            case "output_norm.weight": return "model.norm.weight";
            case "output.weight": return "lm_head.weight";
        }
        var m = BlockTensor().Match(gguf);
        if (!m.Success) return null;
        string? hf = m.Groups[2].Value switch
        {
            "attn_norm" => "input_layernorm",
            "ffn_norm" => "post_attention_layernorm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            _ => null,
        };
        return hf is null ? null : $"model.layers.{m.Groups[1].Value}.{hf}.{m.Groups[3].Value}";
    }

    [GeneratedRegex(@"^blk\.(0|[1-9][0-9]{0,5})\.([a-z_]+)\.(weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex BlockTensor();

    /// <summary>
    /// The Hugging Face config.json equivalent of the file's llama.* metadata (what the built-in llama template binds).
    /// Anything the template cannot express (partial rotary dimensions, unknown RoPE scaling) is an error naming the key.
    /// </summary>
    public static JsonObject Config(GgufFile file)
    {
        var arch = file.String("general.architecture") ?? throw GgufFile.Error(file.Path, "no metadata 'general.architecture'");
        if (arch != Architecture)
            throw GgufFile.Error(file.Path, $"general.architecture is {UserText.Quote(arch)}; this reader takes '{Architecture}' models");
        long Required(string key) => file.Integer(key) ?? throw GgufFile.Error(file.Path, $"no metadata {UserText.Quote(key)}");
        long Positive(string key, long value) =>
            value is > 0 and <= int.MaxValue ? value : throw GgufFile.Error(file.Path, $"metadata {UserText.Quote(key)} is {value}, expected 1 to {int.MaxValue}");

        long dim = Positive("llama.embedding_length", Required("llama.embedding_length"));
        long heads = Positive("llama.attention.head_count", Required("llama.attention.head_count"));
        long kvHeads = Positive("llama.attention.head_count_kv", file.Integer("llama.attention.head_count_kv") ?? heads);
        long headDim = Positive("llama.attention.key_length", file.Integer("llama.attention.key_length") ?? dim / heads);
        long valueDim = file.Integer("llama.attention.value_length") ?? headDim;
        if (valueDim != headDim) throw GgufFile.Error(file.Path, $"llama.attention.value_length {valueDim} differs from key_length {headDim}");
        long ropeDim = file.Integer("llama.rope.dimension_count") ?? headDim;
        if (ropeDim != headDim) throw GgufFile.Error(file.Path, $"llama.rope.dimension_count {ropeDim} is not the head size {headDim} (partial rotary embeddings are not supported)");
        if (heads % kvHeads != 0) throw GgufFile.Error(file.Path, $"llama.attention.head_count {heads} is not a multiple of head_count_kv {kvHeads}");
        if (headDim % 2 != 0) throw GgufFile.Error(file.Path, $"llama.attention.key_length {headDim} is odd (RoPE rotates pairs)");

        var embedding = file.Tensors.FirstOrDefault(t => t.Name == "token_embd.weight") ?? throw GgufFile.Error(file.Path, "no tensor 'token_embd.weight'");
        if (embedding.Dims.Length != 2) throw GgufFile.Error(file.Path, "tensor 'token_embd.weight' is not 2-D");
        long vocab = Positive("llama.vocab_size", file.Integer("llama.vocab_size") ?? embedding.Dims[1]);
        // The sizes the model is elaborated with must be the ones its tensors have: a hostile count must not build a
        // graph of billions of layers before the weights are checked.
        if (embedding.Dims[0] != dim || embedding.Dims[1] != vocab)
            throw GgufFile.Error(file.Path, $"tensor 'token_embd.weight' is [{embedding.Dims[1]}, {embedding.Dims[0]}] but the metadata say vocabulary {vocab}, embedding {dim}");
        long layers = Positive("llama.block_count", Required("llama.block_count"));
        if (layers > file.Tensors.Count || !file.Contains($"blk.{layers - 1}.attn_norm.weight") || file.Contains($"blk.{layers}.attn_norm.weight"))
            throw GgufFile.Error(file.Path, $"llama.block_count is {layers} but the file's blocks (blk.N.attn_norm.weight) do not number {layers}");

        var config = new JsonObject
        {
            ["model_type"] = "llama",
            ["vocab_size"] = vocab,
            ["hidden_size"] = dim,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = headDim,
            ["intermediate_size"] = Positive("llama.feed_forward_length", Required("llama.feed_forward_length")),
            ["rms_norm_eps"] = Finite("llama.attention.layer_norm_rms_epsilon", file.Float("llama.attention.layer_norm_rms_epsilon") ?? 1e-5, file),
            ["rope_theta"] = Finite("llama.rope.freq_base", file.Float("llama.rope.freq_base") ?? 10000.0, file),
            ["max_position_embeddings"] = Positive("llama.context_length", file.Integer("llama.context_length") ?? 4096),
            ["tie_word_embeddings"] = !file.Contains("output.weight"),
            ["attention_bias"] = file.Contains("blk.0.attn_q.bias"),
            ["mlp_bias"] = file.Contains("blk.0.ffn_up.bias"),
            ["hidden_act"] = "silu",
        };
        var scaling = file.String("llama.rope.scaling.type");
        if (scaling is not (null or "none"))
        {
            if (scaling != "linear")
                throw GgufFile.Error(file.Path, $"llama.rope.scaling.type {UserText.Quote(scaling)} is not supported (none, linear)");
            config["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = Finite("llama.rope.scaling.factor", file.Float("llama.rope.scaling.factor") ?? 1.0, file) };
        }
        if (file.Contains("rope_freqs.weight"))
            throw GgufFile.Error(file.Path, "tensor 'rope_freqs.weight' (LLaMA 3.1 RoPE frequency factors) is not supported");
        if (file.Integer("tokenizer.ggml.bos_token_id") is { } bos) config["bos_token_id"] = bos;
        if (file.Integer("tokenizer.ggml.eos_token_id") is { } eos) config["eos_token_id"] = eos;
        return config;
    }

    private static double Finite(string key, double value, GgufFile file) =>
        double.IsFinite(value) && value > 0 ? value
            : throw GgufFile.Error(file.Path, $"metadata {UserText.Quote(key)} is {value.ToString(CultureInfo.InvariantCulture)}, expected a positive finite number");

    /// <summary>How many heads a Q or K weight (or bias) was permuted over by the converter, or 0 for any other tensor.</summary>
    public static long PermutedHeads(GgufFile file, string ggufName)
    {
        if (!ggufName.StartsWith("blk.", StringComparison.Ordinal)) return 0;
        var m = BlockTensor().Match(ggufName);
        if (!m.Success) return 0;
        return m.Groups[2].Value switch
        {
            "attn_q" => file.Integer("llama.attention.head_count") ?? 0,
            "attn_k" => file.Integer("llama.attention.head_count_kv") ?? file.Integer("llama.attention.head_count") ?? 0,
            _ => 0,
        };
    }
}
