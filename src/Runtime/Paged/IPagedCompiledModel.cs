namespace ModelCompiler.Runtime.Paged;

/// <summary>
/// A compiled model whose attentions read and write a paged KV cache (the paged-kv-cache pass). Its inputs are
/// <c>input_ids</c> [1, T] and <c>position_ids</c> [T]: the tokens of a <see cref="PagedBatch"/>, flattened; after the
/// paged-logit-rows pass also <c>logits_rows</c> [1, R], the token rows whose logits it computes (R rows of logits).
/// </summary>
public interface IPagedCompiledModel : ICompiledModel
{
    /// <summary>Per cached layer (in the order of the attention's attr layer), the shape of its keys and values.</summary>
    IReadOnlyList<PagedLayer> CacheLayers { get; }

    /// <summary>
    /// When every paged attention is causal with the same sliding window (Mistral): the window, counting the query's own
    /// position; 0 otherwise. Keys further back are never read again, so their blocks can be freed (<see cref="AttentionSinks"/> kept).
    /// </summary>
    int SlidingWindow => 0;

    /// <summary>With <see cref="SlidingWindow"/>: the first tokens every query still sees (attention sinks).</summary>
    int AttentionSinks => 0;

    /// <summary>One forward over <paramref name="batch"/>'s tokens: writes their keys and values in place, returns the outputs.</summary>
    IReadOnlyDictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> inputs, PagedBatch batch);
}
