namespace ModelCompiler.Runtime;

/// <summary>One file of a <see cref="WeightStore"/>: a safetensors file, or a GGUF file seen under Hugging Face names.</summary>
public interface ITensorSource : IDisposable
{
    string Path { get; }

    IReadOnlyList<TensorInfo> Tensors { get; }

    bool Contains(string name);

    TensorInfo Get(string name);

    float[] ReadFloat32(string name);

    double[] ReadFloat64(string name);

    long[] ReadInt64(string name);
}
