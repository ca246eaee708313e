using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Runtime.SafetensorsTestFiles;

namespace ModelCompiler.Tests.Runtime;

public sealed class WeightStoreTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void OpensASingleFile()
    {
        string path = OraclePath("llama");
        using var store = WeightStore.Open(path);
        Assert.Equal(21, store.Names.Count);
        Assert.Equal(store.Names.Order(StringComparer.Ordinal), store.Names);
        Assert.True(store.Contains("model.norm.weight"));
        Assert.Equal(path, store.FileOf("model.norm.weight"));
        Assert.Equal(new long[] { 32, 64 }, store.Get("model.layers.0.self_attn.k_proj.weight").Shape);
        Assert.Equal(64, store.ReadFloat32("model.norm.weight").Length);
        Assert.Equal(64, store.ReadFloat64("model.norm.weight").Length);
    }

    [Fact]
    public void OpensAFolderWithModelSafetensors()
    {
        SafetensorsWriter.Write(_dir.File("model.safetensors"), [TensorData.FromInt64("ids", [2], [3, 4])]);
        SafetensorsWriter.Write(_dir.File("other.safetensors"), [TensorData.FromInt64("ignored", [1], [0])]);
        using var store = WeightStore.Open(_dir.Path);
        Assert.Equal(["ids"], store.Names);
        Assert.Equal([3L, 4L], store.ReadInt64("ids"));
        Assert.Equal(_dir.File("model.safetensors"), store.FileOf("ids"));
    }

    [Fact]
    public void OpensAShardedFolderThroughItsIndex()
    {
        WriteShards();
        File.WriteAllText(_dir.File("model.safetensors.index.json"), """
            {"metadata": {"total_size": 20},
             "weight_map": {"b": "model-00001-of-00002.safetensors", "a": "model-00001-of-00002.safetensors",
                            "c": "model-00002-of-00002.safetensors"}}
            """);
        using var store = WeightStore.Open(_dir.Path);
        Assert.Equal(["a", "b", "c"], store.Names);
        Assert.EndsWith("model-00001-of-00002.safetensors", store.FileOf("a"));
        Assert.EndsWith("model-00002-of-00002.safetensors", store.FileOf("c"));
        Assert.Equal([1f, 2f], store.ReadFloat32("a"));
        Assert.Equal([5.0], store.ReadFloat64("c"));
        Assert.Equal(new long[] { 1 }, store.Get("c").Shape);
    }

    [Fact]
    public void FallsBackToAllSafetensorsInAFolder()
    {
        WriteShards();
        using var store = WeightStore.Open(_dir.Path);
        Assert.Equal(["a", "b", "c"], store.Names);
    }

    [Fact]
    public void MissingTensorNamesStoreAndTensor()
    {
        WriteShards();
        using var store = WeightStore.Open(_dir.Path);
        var error = Assert.ThrowsAny<McException>(() => store.Get("zzz"));
        Assert.Equal($"{_dir.Path}: no tensor 'zzz'", error.Message);
        Assert.ThrowsAny<McException>(() => store.FileOf("zzz"));
        Assert.ThrowsAny<McException>(() => store.ReadFloat32("zzz"));
    }

    [Fact]
    public void IndexPointingToAMissingFileNamesIt()
    {
        WriteShards();
        File.WriteAllText(_dir.File("model.safetensors.index.json"), """{"weight_map": {"a": "model-00009-of-00009.safetensors"}}""");
        var error = Assert.ThrowsAny<McException>(() => WeightStore.Open(_dir.Path));
        AssertOneLineNaming(error, "model-00009-of-00009.safetensors", "'a'");
    }

    [Theory]
    [InlineData("""{"weight_map": {"zz": "model-00001-of-00002.safetensors"}}""", "'zz'")]
    [InlineData("""{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}""", "outside")]
    [InlineData("""{"weight_map": {"a": "/etc/model.safetensors"}}""", "outside")]
    [InlineData("""{"weight_map": {"a": "bad\u0000name"}}""", "not a valid path")]
    [InlineData("""{"weight_map": {"a": 3}}""", "'a'")]
    [InlineData("""{"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}}""", "twice")]
    [InlineData("""{"weights": {}}""", "weight_map")]
    [InlineData("""{"weight_map": """, "not valid JSON")]
    public void BadIndexIsAnErrorNamingIt(string index, string fragment)
    {
        WriteShards();
        File.WriteAllText(_dir.File("model.safetensors.index.json"), index);
        var error = Assert.ThrowsAny<McException>(() => WeightStore.Open(_dir.Path));
        AssertOneLineNaming(error, "model.safetensors.index.json", fragment);
    }

    [Fact]
    public void TensorInTwoFilesIsAmbiguous()
    {
        SafetensorsWriter.Write(_dir.File("x.safetensors"), [TensorData.FromInt64("a", [1], [1])]);
        SafetensorsWriter.Write(_dir.File("y.safetensors"), [TensorData.FromInt64("a", [1], [2])]);
        var error = Assert.ThrowsAny<McException>(() => WeightStore.Open(_dir.Path));
        AssertOneLineNaming(error, "y.safetensors", "'a'", "x.safetensors");
    }

    [Fact]
    public void NothingUsableIsAnErrorNamingThePath()
    {
        var empty = Assert.ThrowsAny<McException>(() => WeightStore.Open(_dir.Path));
        AssertOneLineNaming(empty, _dir.Path);

        string absent = _dir.File("absent");
        AssertOneLineNaming(Assert.ThrowsAny<McException>(() => WeightStore.Open(absent)), absent);
    }

    [Fact]
    public void CorruptShardIsAFormatErrorNamingTheShard()
    {
        File.WriteAllBytes(_dir.File("model.safetensors"), [1, 2, 3]);
        var error = Assert.Throws<ModelFormatException>(() => WeightStore.Open(_dir.Path));
        AssertOneLineNaming(error, "model.safetensors", "too short");
    }

    private void WriteShards()
    {
        SafetensorsWriter.Write(_dir.File("model-00001-of-00002.safetensors"),
            [TensorData.FromFloat32("a", [2], [1f, 2f]), TensorData.FromInt64("b", [1], [7])]);
        SafetensorsWriter.Write(_dir.File("model-00002-of-00002.safetensors"), [TensorData.FromFloat64("c", [1], [5.0])]);
    }
}
