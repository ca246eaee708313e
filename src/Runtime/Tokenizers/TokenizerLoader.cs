using System.Text.Json;
using ModelCompiler.Runtime.Tokenizers.SentencePiece;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>Loads a tokenizer from what model folders ship.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// <paramref name="path"/> is a model folder (its tokenizer.json, else its tokenizer.model), a
    /// tokenizer.json, a SentencePiece .model file or a .gguf file (its tokenizer.ggml.* metadata). A tokenizer_config.json beside it names the BOS/EOS/UNK/PAD
    /// tokens (<see cref="ITokenizer.SpecialIds"/>). Bad files give a one-line <see cref="McException"/>.
    /// </summary>
    public static ITokenizer Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Gguf.GgufFile.LooksLikeGguf(path)) return GgufTokenizer.Load(path);
        string file;
        if (Directory.Exists(path))
        {
            var json = Path.Combine(path, "tokenizer.json");
            var model = Path.Combine(path, "tokenizer.model");
            if (File.Exists(json)) file = json;
            else if (File.Exists(model)) file = model;
            else throw new McException($"{path}: the folder has no tokenizer.json or tokenizer.model");
        }
        else if (File.Exists(path)) file = path;
        else throw new McException($"{path}: no such file or folder");

        ITokenizer tokenizer = IsJson(file) ? HfTokenizerJson.Load(file) : SentencePieceTokenizer.Load(file);
        if (tokenizer is HfTokenizer hf)
        {
            var config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer_config.json");
            if (File.Exists(config)) hf.SpecialIds = ReadSpecialIds(config, hf);
        }
        return tokenizer;
    }

    private static bool IsJson(string file)
    {
        if (file.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return true;
        if (file.EndsWith(".model", StringComparison.OrdinalIgnoreCase)) return false;
        try
        {
            using var s = File.OpenRead(file);
            int b;
            while ((b = s.ReadByte()) is ' ' or '\t' or '\r' or '\n' or 0xEF or 0xBB or 0xBF) { }
            return b == '{';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new McException($"{file}: cannot read: {e.Message}"); }
    }

    /// <summary>bos_token/eos_token/unk_token/pad_token of tokenizer_config.json (strings or {"content": ...}),
    /// mapped to ids; a malformed config is ignored, since the tokenizer itself is complete without it.</summary>
    private static SpecialTokenIds ReadSpecialIds(string config, ITokenizer tokenizer)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(config));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return tokenizer.SpecialIds;
            int? Id(string name)
            {
                if (!doc.RootElement.TryGetProperty(name, out var v)) return null;
                string? content = v.ValueKind switch
                {
                    JsonValueKind.String => v.GetString(),
                    JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                    _ => null,
                };
                return content is null ? null : tokenizer.TokenToId(content);
            }
            return new SpecialTokenIds(Id("bos_token"), Id("eos_token"), Id("unk_token"), Id("pad_token"));
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return tokenizer.SpecialIds;
        }
    }
}
