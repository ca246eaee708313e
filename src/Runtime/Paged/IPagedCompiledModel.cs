namespace ModelCompiler.Runtime.Paged;

/// <summary>
/// A compiled model whose attentions read and write a paged KV cache (the paged-kv-cache pass). Its inputs are
/// <c>input_ids</c> [1, T] and <c>position_ids</c> [T]: the tokens of a <see cref="PagedBatch"/>, flattened.
/// </summary>
public interface IPagedCompiledModel : ICompiledModel
{
    /// <summary>Per cached layer (in the order of the attention's attr layer), the shape of its keys and values.</summary>
    IReadOnlyList<PagedLayer> CacheLayers { get; }

    /// <summary>One forward over <paramref name="batch"/>'s tokens: writes their keys and values in place, returns the outputs.</summary>
    IReadOnlyDictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> inputs, PagedBatch batch);
}
