# w3_transformer.jl: the W3 workload of the performance plan, a character
# language model: vocab 256, d_model 128, 4 heads, 2 pre-LN layers, MLP 512
# with tanh-GELU, seq 128, causal mask, AdamW 3e-4 (batch 32 in the bench).
# Token and position embeddings start normal(0, 0.02), linear layers as
# PyTorch's nn.Linear. The bench (`cargo bench --bench train_step -- w3`)
# compiles and times its training step on random tokens.
use nn.{Linear, LayerNorm, gelu, softmax}
use losses.cross_entropy
use optim.adamw

# Causal multi-head self-attention over x: [B, T, d].
model Attention(d: int, heads: int, seq: int) {
    qkv: Linear(d, 3 * d)
    out: Linear(d, d)

    fn __call__(self, x) {
        let hd = d / heads
        let qkv = reshape(self.qkv(reshape(x, (-1, d))), (-1, seq, 3, heads, hd))
        # [3, B, heads, T, hd]
        let qkv = transpose(qkv, (2, 0, 3, 1, 4))
        let q = reshape(qkv[0], (-1, heads, seq, hd))
        let k = reshape(qkv[1], (-1, heads, seq, hd))
        let v = reshape(qkv[2], (-1, heads, seq, hd))
        let scores = q @ transpose(k, (0, 1, 3, 2)) / sqrt(float(hd))
        # Position i attends to positions j <= i.
        let causal = reshape(arange(seq), (seq, 1)) >= reshape(arange(seq), (1, seq))
        let scores = where(causal, scores, -1e9)
        let att = softmax(scores) @ v
        let merged = reshape(transpose(att, (0, 2, 1, 3)), (-1, d))
        reshape(self.out(merged), (-1, seq, d))
    }
}

model Mlp(d: int, hidden: int, seq: int) {
    up: Linear(d, hidden)
    down: Linear(hidden, d)

    fn __call__(self, x) {
        let h = gelu(self.up(reshape(x, (-1, d))))
        reshape(self.down(h), (-1, seq, d))
    }
}

# A pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)).
model Block(d: int, heads: int, hidden: int, seq: int) {
    ln1: LayerNorm(d)
    attn: Attention(d, heads, seq)
    ln2: LayerNorm(d)
    mlp: Mlp(d, hidden, seq)

    fn __call__(self, x) {
        let x = x + self.attn(self.ln1(x))
        x + self.mlp(self.ln2(x))
    }
}

model CharTransformer(vocab: int = 256, d: int = 128, heads: int = 4, hidden: int = 512, seq: int = 128, layers: int = 2) {
    tok_emb: f32[vocab, d] = normal(0.02)
    pos_emb: f32[seq, d] = normal(0.02)
    blocks: [Block(d, heads, hidden, seq); layers]
    ln_f: LayerNorm(d)
    head: Linear(d, vocab)

    fn forward(self, tokens: i32[B, seq]) {
        let x = take(self.tok_emb, tokens) + self.pos_emb
        for i in 0..layers {
            x = self.blocks[i](x)
        }
        self.head(reshape(self.ln_f(x), (-1, d)))
    }

    # Next-token prediction: the targets are the inputs shifted by one.
    fn training_step(self, tokens: i32[B, seq], targets: i32[B, seq]) -> f32 {
        let logits = self.forward(tokens)
        cross_entropy(logits, reshape(targets, (-1,)))
    }

    fn configure_optimizers(self) = adamw(lr = 3e-4)
}
