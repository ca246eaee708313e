using System.Text.Json;
using ModelCompiler.Runtime.Gguf;
using ModelCompiler.Runtime.Tokenizers.SentencePiece;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>
/// The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata, built as our own tokenizers:
/// <c>gpt2</c> (byte-level BPE: tokens, merges, GPT-2's pre-tokenizer) as the equivalent tokenizer.json, and
/// <c>llama</c> (SentencePiece BPE: tokens, scores, token types) as a SentencePiece model.
/// </summary>
public static class GgufTokenizer
{
    /// <summary>llama.cpp's token types (llama_token_type), the same numbers as SentencePiece's piece types.</summary>
    private const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    public static ITokenizer Load(string path)
    {
        using var file = GgufFile.Open(path);
        return Load(file);
    }

    public static ITokenizer Load(GgufFile file)
    {
        var model = file.String("tokenizer.ggml.model") ?? throw GgufFile.Error(file.Path, "no metadata 'tokenizer.ggml.model' (the file carries no tokenizer; give --tokenizer)");
        var tokens = file.Array<string>("tokenizer.ggml.tokens", "an array of strings") ?? throw GgufFile.Error(file.Path, "no metadata 'tokenizer.ggml.tokens'");
        if (tokens.Length == 0) throw GgufFile.Error(file.Path, "metadata 'tokenizer.ggml.tokens' is empty");
        var types = file.Array<long>("tokenizer.ggml.token_type", "an array of integers") ?? Enumerable.Repeat((long)Normal, tokens.Length).ToArray();
        if (types.Length != tokens.Length) throw GgufFile.Error(file.Path, $"metadata 'tokenizer.ggml.token_type' has {types.Length} entries for {tokens.Length} tokens");
        for (int i = 0; i < types.Length; i++)
            if (types[i] is < Normal or > Byte) throw GgufFile.Error(file.Path, $"metadata 'tokenizer.ggml.token_type' [{i}] is {types[i]} (1 to 6)");
        int? Special(string name)
        {
            var id = file.Integer($"tokenizer.ggml.{name}_token_id");
            if (id is null) return null;
            return id >= 0 && id < tokens.Length ? (int)id : throw GgufFile.Error(file.Path, $"metadata 'tokenizer.ggml.{name}_token_id' is {id}, outside the {tokens.Length} tokens");
        }
        var ids = new SpecialTokenIds(Special("bos"), Special("eos"), Special("unknown"), Special("padding"));
        return model switch
        {
            "gpt2" => ByteLevelBpe(file, tokens, types, ids),
            "llama" => SentencePieceBpe(file, tokens, types, ids),
            _ => throw GgufFile.Error(file.Path, $"tokenizer.ggml.model {UserText.Quote(model)} is not supported (gpt2, llama)"),
        };
    }

    /// <summary>The tokenizer.json of a GPT-2-style vocabulary, parsed by our tokenizer.json reader.</summary>
    private static HfTokenizer ByteLevelBpe(GgufFile file, string[] tokens, long[] types, SpecialTokenIds ids)
    {
        var pre = file.String("tokenizer.ggml.pre") ?? "default";
        if (pre is not ("default" or "gpt-2" or "gpt2"))
            throw GgufFile.Error(file.Path, $"tokenizer.ggml.pre {UserText.Quote(pre)} is not supported (only GPT-2's pre-tokenizer: default, gpt-2)");
        var merges = file.Array<string>("tokenizer.ggml.merges", "an array of strings") ?? throw GgufFile.Error(file.Path, "no metadata 'tokenizer.ggml.merges'");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
            if (!seen.Add(tokens[i])) throw GgufFile.Error(file.Path, $"tokenizer.ggml.tokens [{i}] {UserText.Quote(tokens[i])} appears twice");
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < tokens.Length; i++)
            {
                if (types[i] is not (Control or UserDefined)) continue;
                w.WriteStartObject();
                w.WriteNumber("id", i);
                w.WriteString("content", tokens[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", types[i] == Control);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNull("normalizer");
            WriteByteLevel(w, "pre_tokenizer", addPrefixSpace: false);
            w.WriteNull("post_processor");
            WriteByteLevel(w, "decoder", addPrefixSpace: true);
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("unk_token");
            w.WriteBoolean("byte_fallback", false);
            w.WriteStartObject("vocab");
            for (int i = 0; i < tokens.Length; i++) w.WriteNumber(tokens[i], i);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var m in merges) w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        HfTokenizer tokenizer;
        try
        {
            tokenizer = HfTokenizerJson.Parse(json.ToArray(), file.Path);
        }
        catch (McException e) when (!e.Message.StartsWith(file.Path, StringComparison.Ordinal))
        {
            throw GgufFile.Error(file.Path, $"tokenizer.ggml.*: {e.Message}");
        }
        tokenizer.SpecialIds = ids;
        return tokenizer;
    }

    private static void WriteByteLevel(Utf8JsonWriter w, string name, bool addPrefixSpace)
    {
        w.WriteStartObject(name);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", addPrefixSpace);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", true);
        w.WriteEndObject();
    }

    private static SentencePieceTokenizer SentencePieceBpe(GgufFile file, string[] tokens, long[] types, SpecialTokenIds ids)
    {
        var scores = file.Array<double>("tokenizer.ggml.scores", "an array of floats") ?? throw GgufFile.Error(file.Path, "no metadata 'tokenizer.ggml.scores'");
        if (scores.Length != tokens.Length) throw GgufFile.Error(file.Path, $"metadata 'tokenizer.ggml.scores' has {scores.Length} entries for {tokens.Length} tokens");
        var pieces = tokens.Select((t, i) => new SentencePieceEntry(t, (float)scores[i], (PieceType)types[i]));
        int unk = ids.Unk ?? Array.FindIndex(types, t => t == Unknown);
        bool prefix = file.Has("tokenizer.ggml.add_space_prefix") ? file.Metadata["tokenizer.ggml.add_space_prefix"] as bool? ?? throw GgufFile.Error(file.Path, "metadata 'tokenizer.ggml.add_space_prefix' is not a bool") : true;
        var model = SentencePieceModelFile.Bpe(pieces, unk, ids.Bos ?? -1, ids.Eos ?? -1, ids.Pad ?? -1, prefix);
        try
        {
            return new SentencePieceTokenizer(model, file.Path);
        }
        catch (McException e) when (!e.Message.StartsWith(file.Path, StringComparison.Ordinal))
        {
            throw GgufFile.Error(file.Path, $"tokenizer.ggml.*: {e.Message}");
        }
    }
}
