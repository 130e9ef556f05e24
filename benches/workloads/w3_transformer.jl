# w3_transformer.jl: the W3 workload of the performance plan, a character
# language model: vocab 256, d_model 128, 4 heads, 2 pre-LN layers, MLP 512
# with tanh-GELU, seq 128, causal mask, AdamW 3e-4 (batch 32 in the bench).
# Token and position embeddings start normal(0, 0.02), linear layers as
# PyTorch's nn.Linear. The bench (`cargo bench --bench train_step -- w3`)
# compiles and times its training step on random tokens.
use nn.{Embedding, LayerNorm, Linear, TransformerBlock}
use losses.cross_entropy
use optim.adamw

model CharTransformer(vocab: int = 256, d: int = 128, heads: int = 4, hidden: int = 512, seq: int = 128, layers: int = 2) {
    tok_emb: Embedding(vocab, d, std = 0.02)
    pos_emb: f32[seq, d] = normal(0.02)
    blocks: [TransformerBlock(d, heads, hidden); layers]
    ln_f: LayerNorm(d)
    head: Linear(d, vocab)

    fn forward(self, tokens: i32[B, seq]) -> f32[B * seq, vocab] {
        let x = self.tok_emb(tokens) + self.pos_emb
        for i in 0..layers {
            x = self.blocks[i](x)
        }
        self.head(reshape(self.ln_f(x), (-1, d)))
    }

    # Next-token prediction: the targets are the inputs shifted by one.
    fn training_step(self, tokens: i32[B, seq], targets: i32[B, seq]) -> f32 {
        cross_entropy(self.forward(tokens), reshape(targets, (-1,)))
    }

    fn configure_optimizers(self) = adamw(lr = 3e-4)
}

trainer { seed = 0 }
