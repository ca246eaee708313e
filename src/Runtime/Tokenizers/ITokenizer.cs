namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>One token of an encoding: its id and its string as the model produced it (for an unknown
/// word that can be the original text, as Hugging Face's <c>Encoding.tokens</c> shows it).</summary>
public readonly record struct Token(int Id, string Text);

/// <summary>The result of <see cref="ITokenizer.EncodeWithTokens"/>.</summary>
public sealed record TokenizerEncoding(IReadOnlyList<int> Ids, IReadOnlyList<string> Tokens);

/// <summary>The ids of the special tokens a model uses, where the tokenizer files name them.</summary>
public sealed record SpecialTokenIds(int? Bos, int? Eos, int? Unk, int? Pad);

/// <summary>
/// A text tokenizer loaded from a model folder's files (<see cref="TokenizerLoader.Load"/>): Hugging Face
/// <c>tokenizer.json</c> or a SentencePiece <c>tokenizer.model</c>. Encoding and decoding reproduce the
/// reference libraries' ids and text exactly.
/// </summary>
public interface ITokenizer
{
    /// <summary>The file this tokenizer was loaded from.</summary>
    string Source { get; }

    /// <summary>The token ids of <paramref name="text"/>; <paramref name="addSpecialTokens"/> lets the
    /// post-processor add what the template says (e.g. BERT's [CLS] … [SEP]).</summary>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);

    /// <summary>Ids and the token strings the model produced (Hugging Face's <c>encoding.tokens</c>).</summary>
    TokenizerEncoding EncodeWithTokens(string text, bool addSpecialTokens = true);

    /// <summary>The text of <paramref name="ids"/>; special tokens are left out unless
    /// <paramref name="skipSpecialTokens"/> is false. Ids outside the vocabulary are ignored.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);

    /// <summary>The vocabulary string of each id (an id outside the vocabulary gives an McException).</summary>
    IReadOnlyList<string> Tokens(IEnumerable<int> ids);

    /// <summary>The id of a vocabulary string (added tokens included), or null.</summary>
    int? TokenToId(string token);

    /// <summary>The vocabulary string of an id, or null.</summary>
    string? IdToToken(int id);

    /// <summary>One more than the largest id, added tokens included: the rows an embedding table needs.</summary>
    int VocabSize { get; }

    /// <summary>The special tokens (content → id): added tokens marked special, or SentencePiece's control
    /// and unknown pieces.</summary>
    IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>BOS/EOS/UNK/PAD ids where known (tokenizer_config.json or the SentencePiece trainer spec).</summary>
    SpecialTokenIds SpecialIds { get; }

    bool IsSpecial(int id);
}
