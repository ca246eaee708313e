using System.Numerics.Tensors;

namespace ModelCompiler.Runtime.Generation;

/// <summary>The result of <see cref="PerplexityEvaluator.Evaluate"/>.</summary>
/// <param name="Perplexity">exp(<paramref name="NegativeLogLikelihood"/> / <paramref name="Tokens"/>)</param>
/// <param name="Tokens">the number of next-token predictions scored</param>
/// <param name="NegativeLogLikelihood">the sum over scored tokens of -log p(token | its window's prefix), natural log</param>
/// <param name="Windows">the windows scored</param>
public sealed record PerplexityResult(double Perplexity, long Tokens, double NegativeLogLikelihood, int Windows);

/// <summary>
/// Perplexity of a causal language model over a token stream, by non-overlapping windows: window w feeds ids
/// [w·W, w·W + W) and scores the predictions of ids [w·W + 1, w·W + W + 1). Only full windows count (see
/// <see cref="EvalCorpus.Windows"/>). Windows are run <see cref="BatchSize"/> at a time through one forward of
/// the compiled model (input <c>input_ids</c> [batch, W], output <c>logits</c> [batch, W, vocab]), in float32;
/// the log-likelihoods are summed in float64.
/// </summary>
public sealed class PerplexityEvaluator
{
    private readonly ICompiledModel _model;

    /// <param name="model">a compiled causal LM with weights loaded (a graph without KV cache)</param>
    public PerplexityEvaluator(ICompiledModel model, int batchSize = 4)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (!model.WeightsLoaded) throw new ArgumentException("the model's weights are not loaded", nameof(model));
        if (model.Inputs.Count != 1 || model.Inputs[0].Name != "input_ids")
            throw new McException($"perplexity needs a model whose only input is input_ids; {model.Name} takes {string.Join(", ", model.Inputs)}");
        if (!model.Outputs.Any(o => o.Name == "logits"))
            throw new McException($"perplexity needs a model with a 'logits' output; {model.Name} has {string.Join(", ", model.Outputs)}");
        _model = model;
        BatchSize = batchSize;
    }

    /// <summary>Windows per forward: more is faster up to the point where the logits stop fitting in cache.</summary>
    public int BatchSize { get; }

    /// <summary>
    /// Scores every full window of <paramref name="ids"/> after the first <paramref name="skipWindows"/>.
    /// <paramref name="progress"/> sees (windows done, windows to score).
    /// </summary>
    public PerplexityResult Evaluate(IReadOnlyList<int> ids, int window, int skipWindows = 0, Action<int, int>? progress = null, CancellationToken cancel = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(skipWindows);
        var windows = EvalCorpus.Windows(ids, window);
        if (skipWindows >= windows.Count)
            throw new McException($"--skip-windows {skipWindows}: the text has only {windows.Count} full windows of {window} tokens ({ids.Count} tokens)");
        var scored = windows.Skip(skipWindows).ToList();
        double nll = 0;
        long tokens = 0;
        progress?.Invoke(0, scored.Count);
        for (int first = 0; first < scored.Count; first += BatchSize)
        {
            cancel.ThrowIfCancellationRequested();
            var batch = scored.GetRange(first, Math.Min(BatchSize, scored.Count - first));
            var input = new long[batch.Count * window];
            for (int b = 0; b < batch.Count; b++)
                for (int t = 0; t < window; t++) input[b * window + t] = ids[batch[b].Start + t];
            var logits = _model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([batch.Count, window], input) })["logits"];
            int vocab = checked((int)logits.Shape[^1]);
            if (logits.Shape.Length != 3 || logits.Shape[0] != batch.Count || logits.Shape[1] != window)
                throw new McException($"{_model.Name}: logits have shape [{string.Join(",", logits.Shape)}], expected [{batch.Count},{window},vocab]");
            var data = logits.Floats!;
            for (int b = 0; b < batch.Count; b++)
                for (int t = 0; t < window; t++)
                {
                    int target = ids[batch[b].Start + t + 1];
                    if ((uint)target >= (uint)vocab) throw new McException($"token id {target} is outside the model's vocabulary ({vocab})");
                    nll -= LogSoftmaxAt(data.AsSpan((b * window + t) * vocab, vocab), target);
                    tokens++;
                }
            progress?.Invoke(Math.Min(first + BatchSize, scored.Count), scored.Count);
        }
        return new PerplexityResult(Math.Exp(nll / tokens), tokens, nll, scored.Count);
    }

    /// <summary>log softmax(<paramref name="logits"/>)[<paramref name="index"/>], with the max subtracted for range.</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> logits, int index)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += Math.Exp(logits[i] - max);
        return logits[index] - max - Math.Log(sum);
    }
}

/// <summary>One scoring window: ids [Start, Start + Length) are fed, [Start + 1, Start + Length + 1) predicted.</summary>
public readonly record struct TokenWindow(int Start, int Length);

/// <summary>
/// Turns an evaluation text into the token stream <see cref="PerplexityEvaluator"/> scores, following the
/// protocol of the team's reference models: documents are separated by lines holding only the EOS token;
/// each document is encoded alone (no special tokens added) and followed by the EOS id.
/// </summary>
public static class EvalCorpus
{
    /// <summary>The documents of <paramref name="text"/>: split on "\n" + <paramref name="eosToken"/> + "\n"
    /// (a separator as the file's first or last line also counts); empty documents are dropped.</summary>
    public static IReadOnlyList<string> Documents(string text, string eosToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(eosToken);
        var separator = "\n" + eosToken + "\n";
        if (text.StartsWith(eosToken + "\n", StringComparison.Ordinal)) text = "\n" + text;
        if (text.EndsWith("\n" + eosToken, StringComparison.Ordinal)) text += "\n";
        return text.Split(separator).Where(d => d.Length > 0).ToList();
    }

    /// <summary>Each document's ids followed by <paramref name="eosId"/>, concatenated.</summary>
    public static List<int> Encode(Tokenizers.ITokenizer tokenizer, string text, int eosId, string eosToken)
    {
        var ids = new List<int>();
        foreach (var doc in Documents(text, eosToken))
        {
            ids.AddRange(tokenizer.Encode(doc, addSpecialTokens: false));
            ids.Add(eosId);
        }
        return ids;
    }

    /// <summary>
    /// The non-overlapping full windows of a stream of <paramref name="count"/> ids: starts 0, W, 2W, … while
    /// start &lt; count − W − 1 (Python's <c>range(0, count - W - 1, W)</c>, as the reference computation did), so
    /// every window has its W targets. Also the calibration windows a quantizer can feed.
    /// </summary>
    public static IReadOnlyList<TokenWindow> Windows(IReadOnlyList<int> ids, int window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        var result = new List<TokenWindow>();
        for (long start = 0; start < (long)ids.Count - window - 1; start += window) result.Add(new TokenWindow((int)start, window));
        return result;
    }

    /// <summary>The ids a window feeds, as a [1, W] row for a compiled model's input_ids.</summary>
    public static long[] Input(IReadOnlyList<int> ids, TokenWindow window)
    {
        var row = new long[window.Length];
        for (int t = 0; t < window.Length; t++) row[t] = ids[window.Start + t];
        return row;
    }
}
